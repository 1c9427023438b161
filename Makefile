# Every target works on a fresh machine with nothing but Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-setup
TORCH_PIN := torch==2.13.0

.PHONY: setup test test-floor lint demo docs bench bench-env bench-peers browser clean

setup: $(STAMP)

# torch is pinned and installed first: an open range would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# ruff over the tree; mypy over the usage example that touches every public name (type checkers see the
# explicit re-exports of losskit.functional, losskit.nn and losskit.distributed)
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy examples/api_usage.py

# Debian's Chromium (needs root and apt), for the tests that open the atlas report and the documentation
# site in a real headless browser. Where that is not possible: make test SKIP_BROWSER=1 (those tests skip).
browser:
ifeq ($(SKIP_BROWSER),1)
	@echo "SKIP_BROWSER=1: Chromium not installed; the browser tests will be skipped"
else
	sh scripts/install_chromium.sh
endif

# The suite builds the documentation site strictly (tests/test_docs.py: sphinx-build -W -n) and opens it.
test: setup lint browser
	$(VENV)/bin/pytest -q -n 2 --dist loadgroup

demo: setup
	$(PY) -m losskit demo

# The documentation site from the docstrings, strict (a broken reference, a missing docstring or a formula
# that does not render is an error), with the atlas report of DOCS_ATLAS as a page (made first if missing).
DOCS_ATLAS ?= atlas-out
docs: setup
	@test -f $(DOCS_ATLAS)/claims.json || $(PY) -m losskit atlas --quick --out $(DOCS_ATLAS)
	$(VENV)/bin/sphinx-build -W --keep-going -n -q -b html -D losskit_atlas=$(abspath $(DOCS_ATLAS)) docs build/docs
	@echo "Site: build/docs/index.html"

bench: setup
	$(PY) benchmarks/run.py

# Peers (torchvision, pytorch-metric-learning) need torch 2.14.1: they live in their own environment.
bench-env:
	bash scripts/setup_bench_env.sh

bench-peers: setup bench-env
	.venv-bench/bin/python benchmarks/run.py

# The suite on the LOWEST torch pyproject.toml declares, in its own environment (.venv-floor, a PyPI
# CUDA build of about 3 GB that runs on the CPU); README.md records the last result.
test-floor:
	bash scripts/setup_floor_env.sh
	.venv-floor/bin/pytest -q -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) build dist src/*.egg-info
