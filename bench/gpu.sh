#!/usr/bin/env bash
# bench/transformer.py on a CUDA GPU (the tiny model, built on the spot; nothing is downloaded):
# batched replies for 1, 4 and 16 chats against generate(), in the dtype the bot would choose;
# then bench/train_scale.py: training steps/s and tokens/s in bf16, on 1 GPU and on all of them.
# Uses the checkout's .venv (PYTHON picks another); it needs a CUDA build of torch and the `ml`
# extra (README: On a GPU machine). Extra arguments go to bench/transformer.py, e.g.
#   bash bench/gpu.sh --model /models/SmolLM2-135M-Instruct --sampling bot --adapter random
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || command -v "$PY" >/dev/null || {
  echo "no $PY: run \`make test\` first (README: On a GPU machine), or set PYTHON" >&2; exit 1; }
"$PY" - <<'EOF'
import sys
import torch
print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}")
if not torch.cuda.is_available():
    why = ("this torch is a CPU build" if torch.version.cuda is None else
           f"no GPU visible, or a driver older than CUDA {torch.version.cuda}")
    sys.exit(f"no CUDA GPU: {why}. Check nvidia-smi (its 'CUDA Version' is the newest the driver "
             "runs), then install the matching torch build, e.g. .venv/bin/pip install "
             "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128 (README: On a "
             "GPU machine)")
print(torch.cuda.get_device_name(), "compute capability", torch.cuda.get_device_capability(),
      "| native bf16:", torch.cuda.get_device_capability()[0] >= 8)
EOF
"$PY" -m bench.transformer --device cuda --threads 4 --tokens 64 --replies 64 "$@"
# Training on accelerate in bf16: 1 process, and one per GPU where there are several.
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
PROCESSES="1"
if [ "$GPUS" -gt 1 ]; then PROCESSES="1 $GPUS"; fi
# shellcheck disable=SC2086  # one argument per process count
"$PY" -m bench.train_scale --device cuda --processes $PROCESSES
