#!/usr/bin/env bash
# bench/transformer.py on a CUDA GPU in bf16 (the tiny model, built on the spot; nothing is
# downloaded). Needs a Python with CUDA torch and the `ml` extra; PYTHON picks it. Extra
# arguments go to the benchmark, e.g. `bash bench/gpu.sh --model /models/SmolLM2-135M-Instruct`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name())"
"$PY" -m bench.transformer --device cuda --dtype bfloat16 --threads 4 --tokens 64 --replies 64 "$@"
