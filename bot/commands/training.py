"""Admin commands of the learning loop. Fine-tuning lands with its own issue; until then these
commands exist (so frontends register them and refuse them to non-admins) and say so."""

from __future__ import annotations

from bot.commands import CommandContext, command


async def _not_yet(ctx: CommandContext) -> str:
    return ctx.t("not_yet", name=ctx.name)


for _name in ("retrain", "rollback", "adapters"):
    command(_name, scope="admin")(_not_yet)
