"""Admin commands of the learning loop: train a new adapter from the votes, go back, look at
the adapters, and pin a chat to one of them (to compare two adapters on real people)."""

from __future__ import annotations

import re
from pathlib import Path

from bot.adapters import BASE, LOSS_CURVE
from bot.commands import Argument, CommandCall, command
from bot.guard import Tally
from bot.store import Adapter

UNPIN = "off"
# How the job's verdict begins (finetune/evaluate.py); /adapters shows the accuracy itself.
JUDGED = re.compile(r"^held-out preference accuracy \d+\.\d+\s*")


@command("retrain", scope="admin", long=True, acts=True)
async def retrain(ctx: CommandCall) -> str:
    jobs = ctx.services.jobs
    if jobs is None:
        return ctx.t("jobs_unavailable")
    return await jobs.retrain(ctx.user, ctx.sink, ctx.lang)


@command("rollback", scope="admin", acts=True)
async def rollback(ctx: CommandCall) -> str:
    done = await ctx.adapters.rollback("", "/rollback")  # no name: manifests outlive /forget
    if not done.retired:
        return ctx.t("rollback_none")
    # What serves now: the one it had replaced, unless that one is broken (then the base model)
    said = ctx.t("rollback_done" if done.served else "rollback_unserved", retired=done.retired,
                 active=done.active or BASE)
    if done.asked != done.active and not done.broken:
        said += " " + ctx.t("rollback_broken", adapter=done.asked)
    return said + done.failures(ctx.lang)


@command("adapters", scope="admin", argument=Argument("id", required=False))
async def adapters(ctx: CommandCall) -> str:
    """The adapters, newest first; with an id, that one's details and its loss curve."""
    found = await ctx.adapters.all()
    if not found:
        return ctx.t("adapters_none")
    chosen = [a for a in found if a.id == ctx.args.strip()] or found[:1]
    lines = [ctx.t("adapters_header")] + [await _line(ctx, a) for a in found[:20]]
    if ctx.args.strip() == chosen[0].id:
        lines += _sampled(ctx, chosen[0])
    curve = Path(chosen[0].path) / LOSS_CURVE
    if curve.is_file():
        await ctx.sink.send_file(curve, ctx.t("adapter_curve", adapter=chosen[0].id))
    return "\n".join(lines)


async def _line(ctx: CommandCall, adapter: Adapter) -> str:
    """Its status, held-out accuracy (what the job judged it by) and why, beside its live
    approval (what the chats think of its replies)."""
    accuracy = f"{adapter.accuracy:.2f}" if adapter.accuracy is not None else "–"
    reason = JUDGED.sub("", adapter.reason)  # the line names the accuracy once
    status = _status(ctx, adapter)
    if adapter.broken:
        status = ctx.t("adapter_broken", status=status, why=adapter.broken)
    line = ctx.t("adapter_line", adapter=adapter.id, status=status, accuracy=accuracy,
                 reason=reason)
    live = Tally(tuple(await ctx.adapters.live_approval(adapter)))
    live_text = (ctx.t("adapter_live", share=str(live)) if live.people
                 else ctx.t("adapter_live_none"))
    return f"{line.rstrip()} · {live_text}"


def _status(ctx: CommandCall, adapter: Adapter) -> str:
    """Its state as the CLI names it ("retired"), with how it got there where that matters: a
    rollback, or a promotion by hand of an adapter the job's gate had rejected."""
    if adapter.rolled_back_at is not None:
        return ctx.t("adapter_rolled_back")
    status = ctx.t(f"adapter_states.{adapter.status}")
    judged = adapter.metrics.get("evaluation", {}).get("promote")
    if judged is False and adapter.status in ("active", "retired"):
        return ctx.t("adapter_forced", status=status)
    return status


def _sampled(ctx: CommandCall, adapter: Adapter) -> list[str]:
    """What the gate saw of the adapter's own replies to held-out prompts: its distance from
    the base model (KL), its fluency, and the reward model's verdict (finetune/judge.py)."""
    evaluation = adapter.metrics.get("evaluation", {})
    sampled, check = evaluation.get("sampled"), evaluation.get("reward_model") or {}
    if not sampled:
        return [ctx.t("adapter_sampled_none", adapter=adapter.id)]
    reward = sampled.get("reward") or {}
    gain = (ctx.t("adapter_reward_gain", gain=f"{reward['gain']:+.2f}",
                  low=f"{reward['gain_low']:+.2f}", high=f"{reward['gain_high']:+.2f}")
            if reward else "–")
    accuracy = check.get("accuracy")
    return [ctx.t("adapter_sampled", adapter=adapter.id, kl=f"{sampled['kl']:.3f}",
                  fluency=f"{sampled['fluency']:.2f}", prompts=sampled.get("prompts", 0),
                  gain=gain, reward_model="–" if accuracy is None else f"{accuracy:.2f}")]


@command("adapter", scope="admin", argument=Argument("id", hint=f"ID|{BASE}|{UNPIN}"),
         acts=True)
async def adapter(ctx: CommandCall) -> str:
    """/adapter ID|base pins this chat to an adapter; /adapter off follows the active one."""
    choice = ctx.args.strip()
    if not choice or not await ctx.adapters.pin(ctx.chat, "" if choice == UNPIN else choice):
        return ctx.t("adapter_usage")
    if choice == UNPIN:
        return ctx.t("adapter_unpinned")
    return ctx.t("adapter_pinned", adapter=choice)
