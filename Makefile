# Two entry points do all the set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check

.PHONY: demo test install install-dev clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)

# torch first (the machine's CPU build; the CUDA build elsewhere), then the rest under the same pin.
# torchvision must never be installed: it breaks transformers' image processors with the CPU torch.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -c constraints.txt -e .
	@if $(BIN)/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('torchvision') is None)"; then \
		echo "torchvision is installed in $(VENV); remove it (pip uninstall torchvision)"; exit 1; fi
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/regionlm demo --out demo_out

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 tests

clean:
	rm -rf $(VENV) demo_out
