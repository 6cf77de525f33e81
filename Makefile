# Two commands do everything: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch first, exactly: here that takes the CPU build that lies on disk; a plain `torch`
# requirement with no torch installed would pull a CUDA build of several GB.
TORCH := torch==2.13.0

.PHONY: run test lint clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[ml,test]'
	touch $@

run: $(VENV)/.base
	$(PY) -m bot

test: $(VENV)/.test
	NO_PROXY=127.0.0.1,localhost $(PY) -m pytest

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache
