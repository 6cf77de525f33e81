"""Commands that show the lesson: every era answering the same text (/compare), and how a
language model's preferences show bias (/probe)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, cast

from bot.budget import estimate, reply_cost
from bot.commands import Argument, CommandCall, command
from bot.events import deliver
from bot.policy import clean_output, is_bot_admin
from engines.base import Capability, Conversation


@command("probe", argument=Argument("text", hint="CONTEXT | A | B"))
async def probe(ctx: CommandCall) -> str:
    context, _, rest = ctx.args.partition("|")
    continuations = [part.strip() for part in rest.split("|") if part.strip()]
    if not rest or len(continuations) < 2:
        return ctx.t("probe_usage")
    if (refused := _probe_limits(ctx, context, continuations)) is not None:
        return refused  # before any engine work
    asked = await ctx.ask_engine(Capability.PROBE, "probe_unsupported",
                                 lambda engine: engine.probe(context.strip(), continuations,
                                                             ctx.lang, chat=ctx.chat_key))
    if isinstance(asked, str):
        return asked
    engine, logprobs = asked
    header = ctx.t("probe_header", text=context.strip(), engine=ctx.engine_name,
                   version=engine.info().version)
    return "\n".join([header, *probe_lines(continuations, logprobs)])


def _probe_limits(ctx: CommandCall, context: str, continuations: list[str]) -> str | None:
    """At most [policy] max_probe_alternatives (bot admins: any number), each scored with its
    context and charged to the person's compute budget before it is asked."""
    limit = ctx.services.config.policy.max_probe_alternatives
    if len(continuations) > limit and not is_bot_admin(ctx.incoming, ctx.services.config.bot):
        return ctx.t("probe_too_many", count=len(continuations), limit=limit)
    cost = sum(estimate(context) + estimate(text) for text in continuations)
    return ctx.services.budgets.spend(ctx.incoming, ctx.lang, cost)


def probe_lines(continuations: list[str], logprobs: list[float]) -> list[str]:
    """"he  3.1e-03  1.00x": each continuation, its probability and its ratio to the first
    (from log-probabilities, so tiny probabilities still give a ratio)."""
    first = logprobs[0]
    lines = []
    for text, logprob in zip(continuations, logprobs, strict=True):
        ratio = math.exp(logprob - first) if first > -math.inf else math.nan
        shown = "—" if math.isnan(ratio) else f"{ratio:.2f}x"
        lines.append(f"{text}  {math.exp(logprob):.1e}  {shown}")
    return lines


@dataclass
class Answer:
    """One engine's answer to a /compare; `reason` says why there is none."""

    engine: str
    version: str = ""
    text: str = ""
    trace: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


@command("compare", argument=Argument("text"))
async def compare(ctx: CommandCall) -> str:
    """Every engine answers, concurrently, each under the reply timeout; the answers are sent
    and stored in the engines' order, so the last one sent is the chat's last reply (the one
    /good and /why apply to), and a reaction on each is a vote for its engine."""
    if not ctx.args.strip():
        return ctx.t("compare_usage")
    # Every engine answers: the person needs budget for the question asked of each of them.
    cost = len(ctx.engines.names) * estimate(ctx.args)
    if (refused := ctx.services.budgets.refusal(ctx.incoming, ctx.lang, cost)) is not None:
        return refused
    tasks = [asyncio.create_task(_answer(ctx, name)) for name in ctx.engines.names]
    failed, inline, count = [], [], 0
    for task in tasks:  # in order, each as soon as it and those before it are done
        answer = await task
        if answer.reason:
            failed.append(ctx.t("compare_failed", engine=answer.engine, reason=answer.reason))
            continue
        count += 1
        ctx.services.budgets.charge(ctx.incoming, reply_cost(answer.trace, ctx.args,
                                                             answer.text))
        text = _label(ctx, answer)
        more = ctx.sink.another()
        if more is None:  # a sink that sends one message only: the answers go in it
            inline.append(text)
            ids: list[str] = []
        else:
            ids = await deliver(more, text)
        await _store(ctx, answer, ids)
    summary = ctx.t("compare_summary", count=count) if count else ctx.t("compare_none")
    return "\n".join([*inline, summary, *failed])


async def _answer(ctx: CommandCall, name: str) -> Answer:
    timeout = ctx.services.config.bot.reply_timeout
    try:
        async with asyncio.timeout(timeout):  # loading one not yet started counts too
            engine = await ctx.engines.get(name)
        info = engine.info()
        if not info.ready:
            return Answer(name, reason=ctx.detail(info.detail or "not ready"))
        conv = Conversation(chat_key=f"{ctx.incoming.platform}:{ctx.incoming.chat_id}",
                            text=ctx.args.strip(), lang=ctx.lang,
                            user_name=ctx.incoming.user_name, adapter=ctx.chat.adapter)
        text = ""
        async with asyncio.timeout(timeout):
            # Engines' replies are async generators (engines/base.py), so they can be closed.
            replying = cast(AsyncGenerator[str, None], engine.reply(conv))
            async with contextlib.aclosing(replying) as deltas:
                async for delta in deltas:
                    text += delta
    except Exception as exc:  # TimeoutError and EngineUnavailable included
        return Answer(name, reason=ctx.detail(f"{type(exc).__name__}: {exc}"))
    # A fresh conversation (no history, empty state): the chat's own stays as it was.
    return Answer(name, conv.version or info.version, text.strip() or ctx.t("no_reply"),
                  conv.trace)


def _label(ctx: CommandCall, answer: Answer) -> str:
    text = ctx.t("compare_label", engine=answer.engine, version=answer.version,
                 answer=answer.text)
    return clean_output(text, ctx.services.config.policy.max_reply_chars)


async def _store(ctx: CommandCall, answer: Answer, ids: list[str]) -> None:
    keep = ctx.services.keeps_text(ctx.user)
    trace = answer.trace if keep else {}
    await ctx.store.add_message(
        ctx.chat, ctx.user, "bot", answer.text if keep else None, platform_ids=ids,
        engine=answer.engine, engine_version=answer.version, trace=trace | {"compare": True},
    )
