#!/usr/bin/env bash
# The first CUDA run of eliza2llm (issue 21, "The GPU path, ready before its first run"):
# confirms or refutes F3 (NaN in left-padded prefill), F5 (NaN in training) and the serving and
# training paths on CUDA, and measures bench/gpu.sh and a fine-tuning job. About 6 minutes on a
# GPU once .venv holds a CUDA torch; nothing is downloaded. Run it from the checkout:
#
#   bash bench/gpu_first_run.sh            # on the GPU machine (or: make gpu-first-run)
#   bash bench/gpu_first_run.sh --cpu      # the same steps, small, on the CPU (~2 minutes)
#   bash bench/gpu_first_run.sh --model DIR  # also bench a real model folder (SmolLM2, say)
#
# It never stops at a failing step: each block says what to look for, and the summary at the
# end (also saved in the scratch folder) is what goes into bench/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda MODEL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) DEVICE=cpu ;;
    --model) MODEL="$2"; shift ;;
    *) echo "usage: bash bench/gpu_first_run.sh [--cpu] [--model DIR]" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { echo "no $PY: make test TORCH_INDEX=... first (README: On a GPU machine)" >&2
                  exit 1; }
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 PYTHONWARNINGS=ignore
export NO_PROXY=127.0.0.1,localhost
W=$(mktemp -d)
SUMMARY="$W/summary.md"
export SUMMARY DEVICE
if [ "$DEVICE" = cuda ]; then  # sized for ten minutes of a GPU
  PRETRAIN=200 STEPS=30 TOKENS=64 REPLIES=64 BASELINE=8
else                           # sized to prove the script on two CPU cores
  PRETRAIN=30 STEPS=4 TOKENS=8 REPLIES=16 BASELINE=2
fi
note() { echo "$*" >> "$SUMMARY"; }
step() { echo; echo "== $*"; }
ran() {  # ran NAME STATUS: one line per block in the summary
  if [ "$2" = 0 ]; then note "- $1: ran"; else note "- $1: FAILED (exit $2), see its block above"; fi
}
echo "scratch folder: $W"
note "### GPU first run, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null)"
note ""
note "Command: \`bash bench/gpu_first_run.sh$([ "$DEVICE" = cpu ] && echo ' --cpu')\`"

step "0. torch, CUDA and the GPU (F1)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
  --format=csv,noheader | tee -a "$W/nvidia-smi.txt"
"$PY" - <<'EOF'
import os, platform, sys
import torch
dev = os.environ["DEVICE"]
line = (f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
        f"{torch.backends.cudnn.version()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPU cores")
if torch.cuda.is_available():
    major, minor = torch.cuda.get_device_capability()
    line += (f"; {torch.cuda.get_device_name()} (compute capability {major}.{minor}, "
             f"native bf16: {major >= 8}, "
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

step "1. a tiny model that has read some text (peaked logits, so argmax comparisons mean something)"
"$PY" -m engines.transformer make-tiny "$W/tiny" --pretrain-steps "$PRETRAIN" | tail -3
TINY="$W/tiny"

step "2. F3: left-padded prefill, old 2-D mask vs the 4-D mask the worker now uses, per SDPA"
echo "   backend. Want finite=True for every 4-D line, max|batched-alone| ~1e-5 in fp32 and"
echo "   ~1e-2 in bf16 (rounding). A 2-D line with finite=False is F3 confirmed on this GPU."
"$PY" - "$TINY" <<'EOF'
import contextlib, os, sys
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from engines.transformer import loading
from engines.transformer.batch import left_pad, positions, prefill_mask
dev = os.environ["DEVICE"]
texts = ["hi", "What is ELIZA, and who wrote it?", "ok so tell me more about cats and dogs, please"]
backends = ["default", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION", "FLASH_ATTENTION", "MATH"]
dtypes = (torch.bfloat16, torch.float32) if dev == "cuda" else (torch.float32,)
found = []
for dtype in dtypes:
    lm, tok = loading.load(sys.argv[1], dev, dtype)
    prompts = [tok(t)["input_ids"] for t in texts]
    ids, mask = (t.to(dev) for t in left_pad(prompts, tok.pad_token_id))
    with torch.no_grad():
        alone = torch.cat([lm(input_ids=torch.tensor([p], device=dev)).logits[:, -1].float()
                           for p in prompts])
    fixed = prefill_mask(mask, lm.config._attn_implementation, dtype)
    for name in backends if dev == "cuda" else ["default", "MATH"]:
        for kind, attention in [("2-D", mask), ("4-D", fixed)]:
            ctx = (contextlib.nullcontext() if name == "default"
                   else sdpa_kernel(getattr(SDPBackend, name)))
            try:
                with ctx, torch.no_grad():
                    batched = lm(input_ids=ids, attention_mask=attention, position_ids=positions(mask),
                                 logits_to_keep=1).logits[:, -1].float()
            except RuntimeError as exc:
                print(f"{str(dtype):15s} {name:20s} {kind} not available: {str(exc).splitlines()[0][:70]}")
                continue
            finite = bool(torch.isfinite(batched).all())
            diff = (batched - alone).abs().max().item()
            print(f"{str(dtype):15s} {name:20s} {kind} finite={finite} max|batched-alone|={diff:.3g} "
                  f"same argmax={(batched.argmax(-1) == alone.argmax(-1)).tolist()}")
            found.append((kind, finite, dtype, name, diff))
old = [f for f in found if f[0] == "2-D" and not f[1]]
new_bad = [f for f in found if f[0] == "4-D" and not f[1]]
worst = max((f[4] for f in found if f[0] == "4-D" and f[1]), default=float("nan"))
with open(os.environ["SUMMARY"], "a") as f:
    f.write(f"- F3 prefill: old 2-D mask non-finite under {len(old)} of "
            f"{sum(1 for x in found if x[0] == '2-D')} dtype/backend pairs"
            f" ({', '.join(f'{d}/{n}' for _, _, d, n, _ in old) or 'none'}); 4-D mask finite in "
            f"{sum(1 for x in found if x[0] == '4-D') - len(new_bad)} of "
            f"{sum(1 for x in found if x[0] == '4-D')}, max|batched-alone| {worst:.3g}\n")
EOF
ran "F3 block" $?

step "3. F2 and the CUDA tests: tests/test_cuda.py runs on a GPU (skipped on the CPU), the rest"
echo "   run pinned to the CPU. Want no failures."
"$PY" -m pytest -p no:cacheprovider -p no:warnings -rfs tests/test_cuda.py \
  tests/test_gpu_path.py tests/test_transformer_engine.py 2>&1 | tail -12 | tee "$W/pytest.txt"
note "- tests (test_cuda, test_gpu_path, test_transformer_engine): $(grep -E '[0-9]+ (passed|failed|skipped)' "$W/pytest.txt" | tail -1)"

if [ "$DEVICE" = cuda ]; then
  step "4. F5: does this torch/cuDNN give NaN gradients in SDPA's backward with an explicit mask?"
  echo "   (non-finite > 0 with cudnn on: the cause F5 names; training now turns cuDNN SDPA off)"
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
    f.write(f"- F5 SDPA backward probe: non-finite grad_q with cuDNN SDPA on: {counts[True]}, "
            f"off: {counts[False]}\n")
EOF
  ran "F5 probe" $?
fi

step "5. F5/F9/F10: two fine-tuning jobs on $DEVICE (KTO, then DPO continuing from its adapter),"
echo "   with the NaN guard on. Want: device $DEVICE, finite losses and weights, adapter float32."
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
for pref in kto dpo; do
  sed -i "s/^preference = .*//; s/^\[finetune\]$/[finetune]\npreference = \"$pref\"/" "$W/ft/config.toml"
  start=$(date +%s.%N)
  "$PY" -m finetune run --data-dir "$W/ft/data" --config "$W/ft/config.toml" \
    > "$W/ft/$pref.out" 2> "$W/ft/$pref.err"
  code=$?
  secs=$("$PY" -c "print(round($(date +%s.%N) - $start, 1))")
  tail -1 "$W/ft/$pref.out"; [ "$code" = 0 ] || tail -3 "$W/ft/$pref.err"
  note "- fine-tuning job ($pref, $STEPS SFT + $STEPS $pref steps, tiny model) on $DEVICE: exit $code, $secs s wall for the whole job (export, train, evaluate, promote)$(grep -o 'TrainingDiverged.*' "$W/ft/$pref.err" | head -1 | sed 's/^/: /')"
done
"$PY" - "$W/ft" <<'EOF'
import asyncio, json, math, os, sys
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
            f"gate accuracy {new.get('accuracy')} margin {new.get('margin')} "
            f"liked_logp {new.get('liked_logp')}")
    print(line)
    lines.append(f"- adapter {line}" + ("" if finite and losses_ok else " **NOT FINITE**"))
with open(os.environ["SUMMARY"], "a") as f:
    f.write("\n".join(lines) + "\n")
(work / "active").write_text(active)
EOF
if [ "$DEVICE" = cuda ] && [ -s "$W/ft/active" ]; then
  echo "   F9: the active adapter judged again in fp32 on the CPU: margin and liked_logp should be"
  echo "   close to the CUDA ones above"
  sed "s/^device = .*/device = \"cpu\"/" "$W/ft/config.toml" > "$W/ft/cpu.toml"
  cp -r "$W/ft/data" "$W/ft/data-cpu"  # evaluate records a verdict: not in the served store
  "$PY" -m finetune evaluate "$(cat "$W/ft/active")" --data-dir "$W/ft/data-cpu" \
    --config "$W/ft/cpu.toml" | tail -1 | tee "$W/ft/cpu-eval.out"
  note "- F9 the same adapter judged in fp32 on the CPU: $("$PY" -c '
import json, sys; e = json.loads(open(sys.argv[1]).read()).get("new", {})
print(f"accuracy {e.get(\"accuracy\")} margin {e.get(\"margin\")} liked_logp {e.get(\"liked_logp\")}")
' "$W/ft/cpu-eval.out" 2>/dev/null)"
fi

step "6. serving the adapter trained above: the store's active adapter, a mixed batch (adapter"
echo "   and base rows), /next. Want every reply its full length, device $DEVICE."
"$PY" - "$W/ft" "$TINY" <<'EOF'
import asyncio, os, sys
from pathlib import Path
from bot.adapters import Adapters
from bot.store import Store
from engines.base import Conversation, EngineContext
from engines.transformer.engine import TransformerEngine, TransformerOptions
from finetune.settings import load_settings
work, model = Path(sys.argv[1]), sys.argv[2]
settings = load_settings(work / "config.toml", str(work / "data"))

async def main():
    store = await Store.open(settings.db)
    adapters = Adapters(store, settings.adapters_dir)
    ctx = EngineContext(work / "engine", adapters_dir=settings.adapters_dir,
                        active_adapter=adapters.active)
    eng = TransformerEngine(TransformerOptions(model=model, device=os.environ["DEVICE"],
                                               max_new_tokens=16), ctx)
    await eng.start()
    eng.worker.eos_ids = set()
    print("info:", eng.info(), "| dtype:", next(eng.adapters.model.parameters()).dtype)
    convs = [Conversation(f"t:{i}", text, adapter=pin) for i, (text, pin) in
             enumerate([("hello there", ""), ("how are you", "base"), ("do you dream", "")])]

    async def one(conv):
        return "".join([d async for d in eng.reply(conv)])

    texts = await asyncio.gather(*(one(c) for c in convs))
    for conv, text in zip(convs, texts):
        print(conv.version, conv.trace["device"], conv.trace["tokens_out"], repr(text))
    words = await eng.next_words("How do you", "en")
    print("next words:", words)
    ok = all(c.trace["tokens_out"] == 16 for c in convs) and words
    with open(os.environ["SUMMARY"], "a") as f:
        f.write(f"- serving on {eng.device}: versions {[c.version for c in convs]}, tokens "
                f"{[c.trace['tokens_out'] for c in convs]}, /next {'ok' if words else 'empty'}"
                f"{'' if ok else ' **CHECK**'}\n")
    await eng.close()
    await store.close()

asyncio.run(main())
EOF
ran "serving block" $?

step "7. F7/F8: batched replies against generate() at 1, 4 and 16 chats (tiny model: these"
echo "   numbers measure overhead more than arithmetic), greedy, then as the bot samples, with an adapter"
BENCH="bash bench/gpu.sh"; [ "$DEVICE" = cuda ] || BENCH="python -m bench.transformer --device cpu"
bench() {
  if [ "$DEVICE" = cuda ]; then PYTHON="$PY" bash bench/gpu.sh "$@"
  else "$PY" -m bench.transformer --device cpu "$@"; fi
}
for args in "--sampling greedy" "--sampling bot --adapter random"; do
  # shellcheck disable=SC2086
  bench --tokens "$TOKENS" --replies "$REPLIES" --baseline-replies "$BASELINE" $args \
    2>/dev/null | tee "$W/bench.txt"
  { echo; echo "\`$BENCH --tokens $TOKENS --replies $REPLIES $args\`:"; echo
    grep -E '^(model|sequential|\|)' "$W/bench.txt"; echo; } >> "$SUMMARY"
done
if [ -n "$MODEL" ]; then
  bench --model "$MODEL" --tokens "$TOKENS" --replies "$REPLIES" --sampling bot 2>/dev/null \
    | tee "$W/bench.txt"
  { echo; echo "\`$BENCH --model $MODEL --sampling bot\`:"; echo
    grep -E '^(model|sequential|\|)' "$W/bench.txt"; echo; } >> "$SUMMARY"
fi

echo
echo "== summary for bench/RESULTS.md (also in $SUMMARY)"
echo
cat "$SUMMARY"
