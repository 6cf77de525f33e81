"""Commands about the bot's replies: rate them, explain them, look inside the prediction."""

from __future__ import annotations

import json

from bot.commands import Argument, CommandContext, command
from bot.policy import without_url_credentials
from engines.base import Capability


async def _rate(ctx: CommandContext, value: int, source: str) -> str:
    reply = await ctx.store.last_reply(ctx.chat)
    if reply is None:
        return ctx.t("no_reply_yet")
    await ctx.store.vote(reply.id, ctx.user, value, source)
    return ctx.t("vote_saved", vote="👍" if value > 0 else "👎")


@command("good")
async def good(ctx: CommandContext) -> str:
    return await _rate(ctx, 1, "/good")


@command("bad")
async def bad(ctx: CommandContext) -> str:
    return await _rate(ctx, -1, "/bad")


@command("why")
async def why(ctx: CommandContext) -> str:
    reply = await ctx.store.last_reply(ctx.chat)
    if reply is None:
        return ctx.t("why_none")
    lines = [ctx.t("why_header", engine=reply.engine, version=reply.engine_version)]
    for key, value in reply.trace.items():
        if key == "error":  # an exception's text: paths and internals
            value = ctx.detail(value)
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{key}: {shown}")
    return without_url_credentials("\n".join(lines))


@command("next", argument=Argument("text"))
async def next_(ctx: CommandContext) -> str:
    if not ctx.args:
        return ctx.t("next_usage")
    asked = await ctx.ask_engine(Capability.NEXT_WORDS, "next_unsupported",
                                 lambda engine: engine.next_words(ctx.args, ctx.lang, 5))
    if isinstance(asked, str):
        return asked
    _, words = asked
    lines = [ctx.t("next_header", text=ctx.args)]
    lines += [f"{word}  {p:.1%}" for word, p in words]
    return "\n".join(lines)
