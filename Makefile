# Every target works on a fresh machine with nothing but Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-setup
TORCH_PIN := torch==2.13.0

.PHONY: setup test lint demo bench bench-env bench-peers browser clean

setup: $(STAMP)

# torch is pinned and installed first: an open range would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .

# Debian's Chromium, for the test that opens the atlas report in a real headless browser.
browser:
	sh scripts/install_chromium.sh

test: setup lint browser
	$(VENV)/bin/pytest -q -n 2 --dist loadgroup

demo: setup
	$(PY) -m losskit demo

bench: setup
	$(PY) benchmarks/run.py

# Peers (torchvision, pytorch-metric-learning) need torch 2.14.1: they live in their own environment.
bench-env:
	bash scripts/setup_bench_env.sh

bench-peers: setup bench-env
	.venv-bench/bin/python benchmarks/run.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
