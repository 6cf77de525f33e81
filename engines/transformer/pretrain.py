"""Pre-training in miniature: next-token prediction on chat-shaped text, on the CPU.

The conversations are laid end to end as one token stream (each one in the chat template), and
every step learns to predict each token of a few random windows from the tokens before it.
This is the "pre-training" step of the lesson, small enough to watch the loss fall.
"""

from __future__ import annotations

import time
from collections.abc import Callable

REPORT_EVERY = 15.0  # seconds: the longest a slow machine waits for the next line


def token_stream(tokenizer, conversations: list[list[dict[str, str]]]) -> list[int]:
    stream: list[int] = []
    for messages in conversations:
        stream += tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    return stream


def pretrain(
    model,
    tokenizer,
    conversations: list[list[dict[str, str]]],
    steps: int,
    batch_size: int = 16,
    window: int = 96,
    lr: float = 3e-3,
    seed: int = 0,
    progress: Callable[[str], None] = print,
) -> float:
    """Train `model` in place for `steps` steps; returns the mean loss of the last steps.

    Progress every tenth of the steps, and at least every `REPORT_EVERY` seconds on a slow
    machine: the loss is the mean over the steps since the last line (one batch's loss jumps
    about; the mean falls), with the time so far and an estimate of the time left."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    stream = torch.tensor(token_stream(tokenizer, conversations))
    window = min(window, len(stream) - 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / max(steps, 1))
    model.train()
    started = reported = time.monotonic()
    losses: list[float] = []
    mean = float("nan")
    for step in range(1, steps + 1):
        starts = torch.randint(0, len(stream) - window, (batch_size,), generator=generator)
        batch = torch.stack([stream[s : s + window] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        now = time.monotonic()
        if step % max(steps // 10, 1) == 0 or step == steps or now - reported >= REPORT_EVERY:
            mean, reported = sum(losses) / len(losses), now
            progress(progress_line(step, steps, mean, len(losses), now - started))
            losses.clear()
    model.eval()
    return mean


def progress_line(step: int, steps: int, mean: float, over: int, elapsed: float) -> str:
    """`step 30/300  loss 4.812 (mean of 30 steps)  elapsed 0:09  left ~1:21`."""
    left = elapsed / step * (steps - step)
    return (f"step {step}/{steps}  loss {mean:.3f} (mean of {over} step{'s' * (over != 1)})  "
            f"elapsed {_clock(elapsed)}  left ~{_clock(left)}")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"
