"""Commands about a person's own data: opt out, see it, delete it."""

from __future__ import annotations

import json

from bot.commands import CommandContext, command


@command("optout")
async def optout(ctx: CommandContext) -> str:
    await ctx.store.set_opted_out(ctx.user, True)
    return ctx.t("opted_out")


@command("optin")
async def optin(ctx: CommandContext) -> str:
    await ctx.store.set_opted_out(ctx.user, False)
    return ctx.t("opted_in")


@command("forget")
async def forget(ctx: CommandContext) -> str:
    count = await ctx.store.forget_user(ctx.user)
    return ctx.t("forgotten", count=count)


@command("mydata")
async def mydata(ctx: CommandContext) -> str:
    if ctx.incoming.is_group:  # it holds the person's private chats too
        return ctx.t("mydata_in_private")
    return json.dumps(await ctx.store.user_data(ctx.user), ensure_ascii=False, indent=1)
