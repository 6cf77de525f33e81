"""Commands about the bot's replies: rate them, explain them, look inside the prediction."""

from __future__ import annotations

import json
import logging

from bot.budget import estimate
from bot.commands import Argument, CommandCall, command
from bot.policy import without_url_credentials
from bot.store import Reply
from engines.base import BOT_WORDS, CUT, Capability

log = logging.getLogger(__name__)


async def _rate(ctx: CommandCall, value: int, source: str) -> str:
    reply = await ctx.store.last_reply(ctx.chat)
    if reply is None:
        return ctx.t("no_reply_yet")
    await ctx.store.vote(reply.id, ctx.user, value, source)
    return ctx.t("vote_saved", vote="👍" if value > 0 else "👎")


@command("good")
async def good(ctx: CommandCall) -> str:
    return await _rate(ctx, 1, "/good")


@command("bad")
async def bad(ctx: CommandCall) -> str:
    return await _rate(ctx, -1, "/bad")


@command("why")
async def why(ctx: CommandCall) -> str:
    reply = await ctx.store.last_reply(ctx.chat)
    if reply is None:
        return ctx.t("why_none")
    lines = [ctx.t("why_header", engine=reply.engine, version=reply.engine_version)]
    for key, value in reply.trace.items():
        if key == "error":  # an exception's text: paths and internals
            value = ctx.detail(value)
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{key}: {shown}")
    rewarded = await _reward(ctx, reply)
    return without_url_credentials("\n".join(lines + ([rewarded] if rewarded else [])))


async def _reward(ctx: CommandCall, reply: Reply) -> str:
    """The reply's reward under the reward model of the active adapter: what the gate's reward
    model, trained on the votes, thinks of it (RLHF's "reward", made visible)."""
    if BOT_WORDS in reply.trace or reply.engine != ctx.engine_name:
        return ""
    texts = await ctx.store.exchange_texts(reply.id)
    if texts is None:
        return ""
    try:
        engine = await ctx.services.engines.get(reply.engine)
        prompt, text = texts
        found = await engine.reward(prompt, text, ctx.lang, CUT in reply.trace) \
            if engine.can(Capability.REWARD) else None
    except Exception:  # an unloadable engine or reward file: /why still explains the rest
        log.warning("no reward for reply %s", reply.id, exc_info=True)
        return ""
    if found is None:
        return ""
    return ctx.t("why_reward", reward=f"{found[0]:+.2f}", adapter=found[1])


@command("next", argument=Argument("text"))
async def next_(ctx: CommandCall) -> str:
    if not ctx.args:
        return ctx.t("next_usage")
    if (refused := ctx.services.budgets.spend(ctx.incoming, ctx.lang,
                                              estimate(ctx.args))) is not None:
        return refused  # its text is scored: charged before the engine is asked
    asked = await ctx.ask_engine(Capability.NEXT_WORDS, "next_unsupported",
                                 lambda engine: engine.next_words(ctx.args, ctx.lang, 5,
                                                                   chat=ctx.chat_key))
    if isinstance(asked, str):
        return asked
    _, words = asked
    lines = [ctx.t("next_header", text=ctx.args)]
    lines += [f"{word}  {p:.1%}" for word, p in words]
    return "\n".join(lines)
