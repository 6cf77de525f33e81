#!/usr/bin/env bash
# The first CUDA run of eliza2llm, sized for one H100 and six minutes (issue 31): the CUDA tests,
# prefill with padding on every attention backend and the one it really takes, the NaN probe of
# training, two fine-tuning jobs, the engine serving their adapter, and the batched-reply bench
# (tiny model, greedy, with a random adapter, sampling; then a random model of SmolLM2-135M's
# shape for real kernel shapes). Nothing is downloaded. From the checkout:
#
#   make gpu-kit                                   # here, once: .whl/ and scratch/tiny (≤ 64 MiB)
#   bash bench/gpu_first_run.sh --tiny scratch/tiny --out "$OUT"   # there (device: carry .whl
#                                                  # and scratch/tiny)
#   bash bench/gpu_first_run.sh --cpu --tiny scratch/tiny          # the same steps, small, here
#
# Without a .venv (the GPU machine's image has torch but not our pins) it installs .whl/ with
# --no-index into .pydeps/ and puts that first on PYTHONPATH. It never stops at a failing step:
# each block says what to look for, and the summary is written to the output folder (--out, or
# $OUT, or a new temporary folder) block by block, so a killed run still leaves what it had.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda MODEL="" TINY="" OUTDIR=${OUT:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) DEVICE=cpu ;;
    --model) MODEL="$2"; shift ;;
    --tiny) TINY="$2"; shift ;;
    --out) OUTDIR="$2"; shift ;;
    *) echo "usage: bash bench/gpu_first_run.sh [--cpu] [--tiny DIR] [--out DIR] [--model DIR]" >&2
       exit 2 ;;
  esac
  shift
done
W=$(mktemp -d)
OUTDIR=${OUTDIR:-$W}
mkdir -p "$OUTDIR"
SUMMARY="$OUTDIR/summary.md"
: > "$SUMMARY"
export SUMMARY DEVICE
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
export NO_PROXY=127.0.0.1,localhost
note() { echo "$*" >> "$SUMMARY"; }
step() { echo; echo "== $*"; }
ran() {  # ran NAME STATUS: one line per block in the summary
  if [ "$2" = 0 ]; then note "- $1: ran"; else note "- $1: FAILED (exit $2), see its block above"; fi
}
if [ "$DEVICE" = cuda ]; then  # sized for six minutes of one H100
  PRETRAIN=200 STEPS=30 TOKENS=64 REPLIES=32 BASELINE=4
else                           # sized to prove the script on two CPU cores
  PRETRAIN=30 STEPS=4 TOKENS=8 REPLIES=16 BASELINE=2  # replies ≥ 16: one a chat
fi
echo "scratch folder: $W; summary: $SUMMARY"
note "### GPU first run, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null)"
note ""
note "Command: \`bash bench/gpu_first_run.sh$([ "$DEVICE" = cpu ] && echo ' --cpu')$([ -n "$TINY" ] && echo " --tiny $TINY")\`"

step "0. Python, the carried wheels, torch, CUDA and the GPU"
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else
  PY=$(command -v python3)
  if [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --target .pydeps .whl/*.whl \
      || echo "installing .whl/ failed: see above"
  else
    echo "no .venv and no .whl/: run \`make gpu-kit\` on a machine with a network and bring .whl"
  fi
  export PYTHONPATH="$PWD/.pydeps:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
  --format=csv,noheader
"$PY" - <<'EOF'
import os, platform, sys
import torch
dev = os.environ["DEVICE"]
versions = {}
for name in ("transformers", "peft", "accelerate"):
    try:
        versions[name] = __import__(name).__version__
    except Exception as exc:  # said, not hidden: the run goes on and shows what fails
        versions[name] = f"missing ({type(exc).__name__}: {exc})"
line = (f"Python {platform.python_version()} ({sys.executable}), torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
        + ", ".join(f"{k} {v}" for k, v in versions.items()) + f", {os.cpu_count()} CPU cores")
if torch.cuda.is_available():
    major, minor = torch.cuda.get_device_capability()
    line += (f"; {torch.cuda.get_device_name()} (compute capability {major}.{minor}, "
             f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)")
print(line)
with open(os.environ["SUMMARY"], "a") as f:
    f.write(f"\nMachine: {line}\n\n")
if dev == "cuda" and not torch.cuda.is_available():
    sys.exit("no CUDA GPU: " + ("this torch is a CPU build" if torch.version.cuda is None else
             f"no GPU visible, or a driver older than CUDA {torch.version.cuda}") +
             ". Install the torch build nvidia-smi's 'CUDA Version' allows (README: On a GPU "
             "machine), or run with --cpu to check the script itself")
EOF
[ $? = 0 ] || { cat "$SUMMARY"; exit 1; }
note "- DDP over NCCL: not exercised (one GPU); training ran in one process"

step "1. the tiny model (pre-trained, so argmax comparisons mean something)"
if [ -n "$TINY" ] && [ -f "$TINY/config.json" ]; then
  echo "using $TINY (no pre-training here)"
else
  TINY="$W/tiny"
  "$PY" -m engines.transformer make-tiny "$TINY" --pretrain-steps "$PRETRAIN" | tail -3
fi

step "2. left-padded prefill: 2-D mask vs the worker's 4-D mask on every SDPA backend, and the"
echo "   kernel the default choice really runs for the masked bf16 prefill (profiler). Want"
echo "   finite=True on every 4-D line, max|batched-alone| ~1e-5 in fp32, ~1e-2 in bf16."
"$PY" bench/gpu_prefill.py "$TINY"
ran "prefill block" $?

step "3. tests/test_cuda.py (skipped without a GPU). Want no failures."
"$PY" -m pytest -p no:cacheprovider -rfs tests/test_cuda.py 2>&1 | tail -15 | tee "$W/pytest.txt"
note "- tests/test_cuda.py: $(grep -E '[0-9]+ (passed|failed|skipped|error)' "$W/pytest.txt" | tail -1)"

if [ "$DEVICE" = cuda ]; then
  step "4. does this torch/cuDNN give NaN gradients in SDPA's backward with an explicit mask?"
  echo "   (non-finite > 0 with cudnn on: training turns cuDNN SDPA off for that reason)"
  "$PY" - <<'EOF'
import os
import torch, torch.nn.functional as F
L, D = 192, 64
q = torch.randn(1, 2, L, D, device="cuda", dtype=torch.bfloat16) * 0.1
k, v = torch.randn_like(q) * 0.1, torch.randn_like(q)
q[..., 0], k[..., 0] = 1.0, -1000.0  # every score about -125: each row's logsumexp < -88.7
q.requires_grad_()
mask = torch.ones(L, L, dtype=torch.bool, device="cuda").tril()
counts = {}
for flag in (True, False):
    torch.backends.cuda.enable_cudnn_sdp(flag)
    q.grad = None
    try:
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask).float().sum().backward()
        counts[flag] = int((~torch.isfinite(q.grad)).sum())
    except RuntimeError as exc:
        counts[flag] = f"error: {str(exc).splitlines()[0][:60]}"
    print("cudnn sdp", "on " if flag else "off", "non-finite grad_q:", counts[flag])
with open(os.environ["SUMMARY"], "a") as f:
    f.write(f"- SDPA backward probe: non-finite grad_q with cuDNN SDPA on: {counts[True]}, "
            f"off: {counts[False]}\n")
EOF
  ran "SDPA backward probe" $?
fi

step "5. two fine-tuning jobs on $DEVICE (KTO, then DPO continuing from its adapter). Want:"
echo "   device $DEVICE, finite losses and weights, adapter float32; peak GPU memory of each."
"$PY" - "$W/ft" "$TINY" "$STEPS" <<'EOF'
import asyncio, os, sys
from pathlib import Path
from tests.finetune_helpers import DB, DISLIKED, LIKED, PROMPTS, finetune_toml, seed
work, model, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
(work / "data").mkdir(parents=True, exist_ok=True)
rows = [(p, r, {"bob": v, "carol": v}) for p in PROMPTS  # every prompt: liked and disliked replies
        for r, v in [*((x, 1) for x in LIKED), *((x, -1) for x in DISLIKED)]]
asyncio.run(seed(work / "data" / DB, rows))
(work / "config.toml").write_text(finetune_toml(
    model, device=f'"{os.environ["DEVICE"]}"', heldout_percent=25, sft_steps=steps,
    preference_steps=steps, threads=2 if os.environ["DEVICE"] == "cpu" else 4))
EOF
# The job in this process's Python, its peak GPU memory printed as it exits.
PEAK='import atexit, runpy, sys, torch
def peak():
    if torch.cuda.is_available():
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB allocated, "
              f"{torch.cuda.max_memory_reserved() / 2**20:.0f} MiB reserved", file=sys.stderr)
atexit.register(peak)
sys.argv[0] = "finetune"
runpy.run_module("finetune", run_name="__main__")'
for pref in kto dpo; do
  sed -i "s/^preference = .*//; s/^\[finetune\]$/[finetune]\npreference = \"$pref\"/" "$W/ft/config.toml"
  start=$(date +%s.%N)
  "$PY" -c "$PEAK" run --data-dir "$W/ft/data" --config "$W/ft/config.toml" \
    > "$W/ft/$pref.out" 2> >(tee "$W/ft/$pref.err" | tail -5 >&2)
  code=$?
  secs=$("$PY" -c "print(round($(date +%s.%N) - $start, 1))")
  tail -1 "$W/ft/$pref.out"
  note "- fine-tuning job ($pref, $STEPS SFT + $STEPS $pref steps, tiny model) on $DEVICE: exit $code, $secs s wall for the whole job$(grep -o 'peak GPU memory.*' "$W/ft/$pref.err" | tail -1 | sed 's/^/; /')$(grep -o 'TrainingDiverged.*' "$W/ft/$pref.err" | head -1 | sed 's/^/: /')"
done
"$PY" - "$W/ft" <<'EOF'
import json, math, os, sys
from pathlib import Path
import torch
from safetensors.torch import load_file
from finetune.run import with_adapters
from finetune.settings import load_settings
work = Path(sys.argv[1])
settings = load_settings(work / "config.toml", str(work / "data"))
active = with_adapters(settings, lambda a: a.active())
lines = []
for adapter in with_adapters(settings, lambda a: a.all())[::-1]:  # oldest first
    folder = settings.folders.folder(adapter.id)
    m = json.loads((folder / "manifest.json").read_text())
    weights = load_file(folder / "adapter_model.safetensors")
    finite = all(bool(torch.isfinite(t).all()) for t in weights.values())
    losses_ok = all(v is None or math.isfinite(v) for v in m["metrics"].values())
    new = m.get("evaluation", {}).get("new", {})
    line = (f"{adapter.id} ({adapter.status}): {m['device']} {m['dtype']}, training "
            f"{m['duration_seconds']} s, losses {m['metrics']}, adapter "
            f"{sorted({str(t.dtype).split('.')[-1] for t in weights.values()})} finite={finite}, "
            f"gate accuracy {new.get('accuracy')} margin {new.get('margin')}")
    print(line)
    lines.append(f"- adapter {line}" + ("" if finite and losses_ok else " **NOT FINITE**"))
with open(os.environ["SUMMARY"], "a") as f:
    f.write("\n".join(lines) + "\n")
(work / "active").write_text(active)
EOF
ran "adapters block" $?

step "6. serving the adapter trained above: a mixed batch (adapter and base rows), /next; peak"
echo "   GPU memory after serving. Want every reply its full length, device $DEVICE."
"$PY" bench/gpu_serve.py "$W/ft" "$TINY"
ran "serving block" $?

step "7. batched replies against generate() at 1, 4 and 16 chats: greedy; greedy with a random"
echo "   adapter; sampling with a random adapter (tiny model: overhead more than arithmetic)"
bench() {  # bench LABEL ARGS...: one bench.transformer run, its table into the summary
  local label=$1; shift
  "$PY" -m bench.transformer --device "$DEVICE" --threads 4 --tokens "$TOKENS" \
    --replies "$REPLIES" --baseline-replies "$BASELINE" --rounds 1 "$@" | tee "$W/bench.txt"
  { echo; echo "$label: \`python -m bench.transformer --device $DEVICE --tokens $TOKENS --replies $REPLIES $*\`"
    echo; grep -E '^(model|sequential|\|)' "$W/bench.txt"; echo; } >> "$SUMMARY"
}
bench "tiny, greedy" --model "$TINY" --sampling greedy
bench "tiny, greedy, random adapter" --model "$TINY" --sampling greedy --adapter random
bench "tiny, sampling, random adapter" --model "$TINY" --sampling bot --adapter random

step "8. a random model of SmolLM2-135M's shape (30 layers, hidden 576, 9/3 heads, vocabulary"
echo "   49,152) with the tiny tokenizer: the bench with real kernel shapes"
"$PY" -m bench.shaped_model "$TINY" "$W/smol-shaped" && \
  bench "SmolLM2-135M's shape, random weights" --model "$W/smol-shaped" --sampling greedy
if [ -n "$MODEL" ]; then
  bench "$MODEL" --model "$MODEL" --sampling bot
fi

echo
echo "== summary for bench/RESULTS.md (also in $SUMMARY)"
echo
cat "$SUMMARY"
