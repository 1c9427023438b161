#!/usr/bin/env bash
# The one prepared command for a machine with a CUDA GPU (torch and torchvision installed, nothing to
# install, losskit from source): CUDA parity of every loss with host syncs as errors, the
# device-parametrised tests where pytest is present, and a CUDA timing table against torch,
# torchvision and pytorch-metric-learning (where installed). Under 8 minutes. Writes gpu_check.md and
# gpu_check.json into $OUT (or ./gpu-check-out).
#
#   bash scripts/gpu_check.sh [--only NAME[,..]] [--skip-timing]
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
timeout 420 python scripts/gpu_check.py "$@"
status=$?
if python -c "import pytest, hypothesis, xdist" >/dev/null 2>&1; then
    # the contract table's device rows: every dtype on CUDA with torch.cuda.set_sync_debug_mode("error")
    timeout 120 python -m pytest -q -p no:cacheprovider tests/test_contract.py -k cuda -x || status=1
else
    echo "gpu_check: pytest/hypothesis not installed here; the standalone parity survey above covers the contract cases"
fi
exit $status
