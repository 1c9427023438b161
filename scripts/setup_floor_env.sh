#!/usr/bin/env bash
# Create `.venv-floor`: the LOWEST torch that pyproject.toml declares, for `make test-floor`.
#
# PyPI's Linux wheels of older torch releases are CUDA builds (about 3 GB with their NVIDIA libraries);
# they run on the CPU. Nothing in `make test` needs this environment.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${FLOOR_VENV:-.venv-floor}"
# the floor declared in pyproject.toml's dependencies ("torch>=X.Y"), installed at its last patch release
FLOOR_PIN="${FLOOR_PIN:-torch==2.4.1}"
STAMP="$VENV/.stamp-floor-v2"  # v2: the dev extras

if [[ -f "$STAMP" ]]; then
    echo "setup_floor_env: $VENV is ready (remove $STAMP to rebuild)"
    exit 0
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
echo "setup_floor_env: installing $FLOOR_PIN"
"$VENV/bin/python" -m pip install --quiet "$FLOOR_PIN"
# losskit and everything `make test` uses, the torch pin repeated so that nothing moves torch
"$VENV/bin/python" -m pip install --quiet -e '.[dev]' "$FLOOR_PIN"
"$VENV/bin/python" -c "import torch, losskit; print('setup_floor_env: ok torch', torch.__version__)"
touch "$STAMP"
