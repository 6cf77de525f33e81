# Two commands do everything: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch first, exactly: here that takes the CPU build that lies on disk; a plain `torch`
# requirement with no torch installed would pull a CUDA build of several GB.
# On a GPU machine, name the PyTorch index of a CUDA version the driver runs (nvidia-smi shows
# the newest), e.g. `make test TORCH_INDEX=https://download.pytorch.org/whl/cu128`.
TORCH_INDEX ?=
TORCH := torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))

# The offline quickstart's tiny model (README), pre-trained for STEPS steps (~0.4 s of CPU each;
# one thread). data/models/tiny.steps holds the STEPS it was built with: another STEPS rebuilds.
TINY := data/models/tiny
STEPS ?= 300

.PHONY: run test lint clean tiny FORCE

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[ml,test]'
	touch $@

$(VENV)/.ml: $(VENV)/.base
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[ml]'
	touch $@

# `make run ML=1`: the ml extra (the transformer engine) installed first; ARGS go to the bot.
run: $(VENV)/.base $(if $(ML),$(VENV)/.ml)
	$(PY) -m bot $(ARGS)

tiny: data/tiny.toml

# Rewritten only when STEPS differs from the last build's, so its date says when to rebuild.
# umask 077: what make writes under data/ is private like the rest (folders 0700, files 0600).
$(TINY).steps: FORCE
	@umask 077; mkdir -p $(dir $@); \
	[ "$$(cat $@ 2>/dev/null)" = "$(STEPS)" ] || echo "$(STEPS)" > $@

data/tiny.toml: $(TINY).steps | $(VENV)/.ml
	umask 077; $(PY) -m engines.transformer make-tiny $(TINY) --pretrain-steps $(STEPS)
	umask 077; printf '[engines.transformer]\nmodel = "./$(TINY)"\n' > $@

test: $(VENV)/.test
	NO_PROXY=127.0.0.1,localhost $(PY) -m pytest

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy  # [tool.mypy] in pyproject.toml: what is checked, what is not yet typed
	$(VENV)/bin/hadolint deploy/Dockerfile
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml

# The first CUDA run (bench/gpu_first_run.sh): what it prints goes to bench/RESULTS.md.
.PHONY: gpu-first-run
gpu-first-run: $(VENV)/.test
	bash bench/gpu_first_run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
