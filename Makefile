# Two commands on a fresh clone: `make demo` and `make test`. Both set up .venv themselves.
# Users bring their own torch; with none installed and no GPU, setup takes the CPU build 2.13.0
# (a bare `torch` requirement would pull a multi-GB CUDA build). torchattacks is an independent
# cross-check for the tests; it imports without torchvision, so it is installed without its deps.
# Headless Chromium (Debian package) opens the HTML report in a test; a failed install only makes
# that test skip, it never fails setup.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.armor-installed

.PHONY: demo test setup browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || \
	  { if command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch; \
	    else $(PY) -m pip install -q torch==2.13.0; fi; }
	$(PY) -m pip install -q -e '.[test]'
	-$(PY) -m pip install -q --no-deps torchattacks
	@touch $(STAMP)

# the browser is for the tests only: `make demo` stays fast on a fresh machine
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && { apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium not installed: the HTML report's browser test will be skipped"

demo: setup
	$(VENV)/bin/armor demo

test: setup browser
	$(PY) -m pytest -q -n auto --dist loadfile

clean:
	rm -rf $(VENV) runs .pytest_cache
