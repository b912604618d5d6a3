# The two set-up commands: `make demo` and `make test`. Both create/use a local virtualenv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# PyTorch first, as its own step, so that pip takes these (locally cached) wheels and not a newer download.
TORCH_PKGS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: demo test upstream clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(PY)
	$(PY) -m pip install -q $(TORCH_PKGS)
	touch $@

$(VENV)/.installed-%: pyproject.toml $(VENV)/.torch
	$(PY) -m pip install -q -e ".[$*]"
	touch $@

demo: $(VENV)/.installed-demo
	PATH="$(abspath $(VENV))/bin:$$PATH" bash tools/demo.sh

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

# timm's and MMPretrain's own test suites on our models (downloads timm's sdist; see tests/upstream/run.sh)
upstream: $(VENV)/.installed-dev
	bash tests/upstream/run.sh $(PY)

clean:
	rm -rf $(VENV) work_dirs
