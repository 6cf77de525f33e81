"""Commands about a person's own data: opt out, see it, delete it."""

from __future__ import annotations

import json

from bot.commands import CommandContext, command
from engines.base import Capability


async def _unlearn(ctx: CommandContext) -> None:
    """What engines learned from the chat is rebuilt without the withdrawn text."""
    for engine in ctx.engines.loaded():
        if engine.can(Capability.LEARNS):
            await engine.relearn()


@command("optout")
async def optout(ctx: CommandContext) -> str:
    await ctx.store.set_opted_out(ctx.user, True)
    await _unlearn(ctx)
    return ctx.t("opted_out")


@command("optin")
async def optin(ctx: CommandContext) -> str:
    await ctx.store.set_opted_out(ctx.user, False)
    return ctx.t("opted_in")


@command("forget")
async def forget(ctx: CommandContext) -> str:
    count = await ctx.store.forget_user(ctx.user)
    await _unlearn(ctx)
    return ctx.t("forgotten", count=count)


@command("mydata")
async def mydata(ctx: CommandContext) -> str:
    if ctx.incoming.is_group:  # it holds the person's private chats too
        return ctx.t("mydata_in_private")
    return json.dumps(await ctx.store.user_data(ctx.user), ensure_ascii=False, indent=1)
