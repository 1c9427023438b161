#!/usr/bin/env bash
# Create the peers environment `.venv-bench` used only by benchmarks and parity checks.
#
# It holds a newer torch than the development environment, torchvision (box losses),
# pytorch-metric-learning (metric, margin and contrastive losses) and open_clip (CLIP / SigLIP), plus
# losskit itself installed editable.
# Nothing in the test suite needs it. Safe to re-run: an existing environment is reused and a stamp
# file skips the work once it has completed.
#
#   bash scripts/setup_bench_env.sh            # create or update .venv-bench
#   PYTHON=python3.12 bash scripts/setup_bench_env.sh
set -euo pipefail

cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${BENCH_VENV:-.venv-bench}"
TORCH_PIN="torch==2.14.1"
TORCHVISION_PIN="torchvision==0.29.1"
PML_PIN="pytorch-metric-learning==2.9.0"
OPEN_CLIP_PIN="open-clip-torch==3.3.0"
STAMP="$VENV/.stamp-bench-v3"  # v2: open_clip added; v3: the test tools (parity tests run here)

if [[ -f "$STAMP" ]]; then
    echo "setup_bench_env: $VENV is ready (remove $STAMP to rebuild)"
    exit 0
fi

echo "setup_bench_env: creating $VENV with $($PYTHON --version)"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install --quiet --upgrade pip

# torch and torchvision first, pinned together: an open range would pick another torch.
echo "setup_bench_env: installing $TORCH_PIN $TORCHVISION_PIN"
"${PIP[@]}" install --quiet "$TORCH_PIN" "$TORCHVISION_PIN"

# pytorch-metric-learning declares only torch>=1.6; repeating the torch pin keeps pip from moving it.
echo "setup_bench_env: installing $PML_PIN"
"${PIP[@]}" install --quiet "$PML_PIN" "$TORCH_PIN" numpy scikit-learn tqdm rich

# open_clip (ClipLoss / SigLipLoss parity and benchmarks); its torch/torchvision ranges are open, so the
# pins are repeated to keep pip from moving them.
echo "setup_bench_env: installing $OPEN_CLIP_PIN"
"${PIP[@]}" install --quiet "$OPEN_CLIP_PIN" "$TORCH_PIN" "$TORCHVISION_PIN"

# losskit itself, editable and without dependencies, so the pinned torch above stays.
echo "setup_bench_env: installing losskit (editable, --no-deps)"
# the test tools, so that the parity tests (pytest.importorskip on the peers) run here too
"${PIP[@]}" install --quiet "pytest>=8" "pytest-xdist>=3.5" "hypothesis>=6.100" "$TORCH_PIN"

"${PIP[@]}" install --quiet --no-deps -e .

"$VENV/bin/python" - <<'PY'
import open_clip
import pytorch_metric_learning
import torch
import torchvision

import losskit

print(
    f"setup_bench_env: ok torch {torch.__version__}, torchvision {torchvision.__version__}, "
    f"pytorch-metric-learning {pytorch_metric_learning.__version__}, open_clip {open_clip.__version__}, "
    f"losskit {losskit.__name__}"
)
PY
touch "$STAMP"
