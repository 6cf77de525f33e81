"""Block 2 of bench/gpu_first_run.sh: left-padded prefill on each attention backend, with the
plain 2-D padding mask and with the 4-D mask the worker builds (batch.prefill_mask), against
each prompt run alone; then which SDPA kernel the default choice really runs for the masked
prefill in the serving dtype, read from the profiler's op names.

    python bench/gpu_prefill.py MODEL_DIR      (DEVICE=cuda|cpu, SUMMARY=file to append to)
"""

from __future__ import annotations

import contextlib
import os
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

from engines.transformer import loading
from engines.transformer.batch import left_pad, positions, prefill_mask

TEXTS = ["hi", "What is ELIZA, and who wrote it?", "ok so tell me more about cats and dogs, please"]
BACKENDS = ["default", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION", "FLASH_ATTENTION", "MATH"]
# aten's SDPA ops, as the profiler names them: which kernel family the dispatcher chose.
KERNELS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
           "cudnn": "CUDNN_ATTENTION", "math": "MATH", "overrideable": "OVERRIDEABLE"}


def prefill(model, ids, attention, mask) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=attention, position_ids=positions(mask),
                     logits_to_keep=1).logits[:, -1].float()


def chosen_kernel(model, ids, attention, mask) -> str:
    """The SDPA ops the default dispatch ran for one masked prefill."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if ids.is_cuda else [])
    with profile(activities=activities) as prof:
        prefill(model, ids, attention, mask)
    ops = {e.key for e in prof.key_averages() if "scaled_dot_product" in e.key}
    found = {kind for op in ops for key, kind in KERNELS.items() if key in op}
    return f"{', '.join(sorted(found)) or 'none seen'} (ops: {', '.join(sorted(ops)) or '-'})"


def main(model_dir: str, dev: str) -> list[str]:
    dtypes = (torch.bfloat16, torch.float32) if dev == "cuda" else (torch.float32,)
    found, lines = [], []
    for dtype in dtypes:
        model, tokenizer = loading.load(model_dir, dev, dtype)
        prompts = [tokenizer(t)["input_ids"] for t in TEXTS]
        ids, mask = (t.to(dev) for t in left_pad(prompts, tokenizer.pad_token_id))
        with torch.no_grad():
            alone = torch.cat([model(input_ids=torch.tensor([p], device=dev)).logits[:, -1]
                               for p in prompts]).float()
        fixed = prefill_mask(mask, model.config._attn_implementation, dtype)
        for name in BACKENDS if dev == "cuda" else ["default", "MATH"]:
            for kind, attention in [("2-D", mask), ("4-D", fixed)]:
                ctx = (contextlib.nullcontext() if name == "default"
                       else sdpa_kernel(getattr(SDPBackend, name)))
                try:
                    with ctx:
                        batched = prefill(model, ids, attention, mask)
                except RuntimeError as exc:
                    print(f"{dtype!s:15} {name:20} {kind} not available: "
                          f"{str(exc).splitlines()[0][:70]}")
                    continue
                finite = bool(torch.isfinite(batched).all())
                diff = (batched - alone).abs().max().item()
                same = (batched.argmax(-1) == alone.argmax(-1)).tolist()
                print(f"{dtype!s:15} {name:20} {kind} finite={finite} "
                      f"max|batched-alone|={diff:.3g} same argmax={same}")
                found.append((kind, finite, dtype, name, diff))
        kernel = chosen_kernel(model, ids, fixed, mask)
        print(f"{dtype!s:15} the default dispatch of the 4-D masked prefill ran: {kernel}")
        name = str(dtype).split(".")[-1]
        lines.append(f"- SDPA kernel of the masked prefill in {name}: {kernel}")
    old = [f for f in found if f[0] == "2-D" and not f[1]]
    new = [f for f in found if f[0] == "4-D"]
    worst = max((f[4] for f in new if f[1]), default=float("nan"))
    lines.insert(0, f"- prefill: 2-D mask non-finite under {len(old)} of "
                    f"{len(found) - len(new)} dtype/backend pairs "
                    f"({', '.join(f'{d}/{n}' for _, _, d, n, _ in old) or 'none'}); 4-D mask "
                    f"finite in {sum(f[1] for f in new)} of {len(new)}, max|batched-alone| "
                    f"{worst:.3g}")
    return lines


if __name__ == "__main__":
    summary = main(sys.argv[1], os.environ.get("DEVICE", "cuda"))
    with open(os.environ["SUMMARY"], "a") as f:
        f.write("\n".join(summary) + "\n")
