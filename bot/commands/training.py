"""Admin commands of the learning loop: train a new adapter from the votes, go back, look at
the adapters, and pin a chat to one of them (to compare two adapters on real people)."""

from __future__ import annotations

from pathlib import Path

from bot.commands import CommandContext, command

TRANSFORMER = "transformer"
CURVE = "loss_curve.png"


def _adapters_dir(ctx: CommandContext) -> Path:
    return ctx.router.config.data_dir / "adapters"


@command("retrain", scope="admin", long=True)
async def retrain(ctx: CommandContext) -> str:
    if ctx.router.jobs is None:
        return ctx.t("jobs_unavailable")
    return await ctx.router.jobs.retrain(ctx.user, ctx.sink, ctx.lang)


@command("rollback", scope="admin")
async def rollback(ctx: CommandContext) -> str:
    from finetune.promote import rollback as roll_back

    retired, active = await roll_back(ctx.store, _adapters_dir(ctx))
    if not retired:
        return ctx.t("rollback_none")
    if ctx.router.jobs is not None:
        await ctx.router.jobs.swap_in(active)
    return ctx.t("rollback_done", retired=retired, active=active or "base")


@command("adapters", scope="admin")
async def adapters(ctx: CommandContext) -> str:
    """The adapters, newest first; with an id, that one's details and its loss curve."""
    found = await ctx.store.adapters()
    if not found:
        return ctx.t("adapters_none")
    chosen = [a for a in found if a.id == ctx.args.strip()] or found[:1]
    lines = [ctx.t("adapters_header")] + [_line(ctx, a) for a in found[:20]]
    curve = Path(chosen[0].path) / CURVE
    send_file = getattr(ctx.sink, "send_file", None)
    if send_file is not None and curve.is_file():
        await send_file(curve, ctx.t("adapter_curve", adapter=chosen[0].id))
    return "\n".join(lines)


def _line(ctx: CommandContext, adapter) -> str:
    evaluation = adapter.metrics.get("evaluation", {})
    accuracy = evaluation.get("new", {}).get("accuracy")
    shown = f"{accuracy:.2f}" if isinstance(accuracy, int | float) else "–"
    reason = adapter.metrics.get("reason") or evaluation.get("reason", "")
    status = ctx.t(f"adapter_states.{adapter.status}")
    return ctx.t("adapter_line", adapter=adapter.id, status=status, accuracy=shown,
                 reason=reason)


@command("adapter", scope="admin")
async def adapter(ctx: CommandContext) -> str:
    """/adapter ID|base pins this chat to an adapter; /adapter off follows the active one."""
    choice = ctx.args.strip()
    known = {a.id for a in await ctx.store.adapters()}
    if not choice or (choice not in known and choice not in ("base", "off")):
        return ctx.t("adapter_usage")
    state = await ctx.store.engine_state(ctx.chat, TRANSFORMER)
    if choice == "off":
        state.pop("adapter", None)
    else:
        state["adapter"] = choice
    await ctx.store.save_engine_state(ctx.chat, TRANSFORMER, state)
    return ctx.t("adapter_unpinned") if choice == "off" else ctx.t("adapter_pinned",
                                                                   adapter=choice)
