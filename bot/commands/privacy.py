"""Commands about a person's own data: opt out, see it, delete it."""

from __future__ import annotations

import json
import shutil

from bot import learning
from bot.commands import CommandCall, command
from bot.files import write_private


@command("optout")
async def optout(ctx: CommandCall) -> str:
    if not ctx.user.opted_out:  # again: engines hold nothing of theirs, nothing to do
        texts = await ctx.store.texts_of(ctx.user)
        await ctx.store.set_opted_out(ctx.user, True)
        await learning.withdraw(ctx.engines, texts)
    return ctx.t("opted_out")


@command("optin")
async def optin(ctx: CommandCall) -> str:
    if ctx.user.opted_out:  # their stored text is learned again, as at the next start
        await ctx.store.set_opted_out(ctx.user, False)
        for message in learning.written(await ctx.store.texts_of(ctx.user)):
            await learning.learn(ctx.engines, message)
    return ctx.t("opted_in")


@command("forget")
async def forget(ctx: CommandCall) -> str:
    texts = await ctx.store.texts_of(ctx.user)  # none if opted out: engines hold none
    forgotten = await ctx.store.forget_user(ctx.user)
    # An opted-out person's words live on in memory only (ELIZA's memory of their chats).
    ctx.services.drop_unstored_state(forgotten.chat_ids)
    # An export left by a job run step by step may hold their words; the next one rebuilds it.
    shutil.rmtree(ctx.services.config.dataset_dir, ignore_errors=True)
    await learning.withdraw(ctx.engines, texts)
    lines = [ctx.t("forgotten", count=forgotten.messages)]
    adapters = ctx.adapters.trained_on(forgotten.message_ids)
    if adapters:
        lines.append(ctx.t("forgotten_adapters", adapters=", ".join(adapters)))
    if not forgotten.wal_wiped:
        lines.append(ctx.t("forgotten_wal_pending"))
    return "\n".join(lines)


@command("mydata", whole=True)
async def mydata(ctx: CommandCall) -> str:
    """As a file where the platform can send one; else as text, never shortened."""
    if ctx.incoming.is_group:  # it holds the person's private chats too
        return ctx.t("mydata_in_private")
    data = json.dumps(await ctx.store.user_data(ctx.user), ensure_ascii=False, indent=1)
    if not ctx.uploads:  # the console: the JSON itself, whole
        return data
    async with ctx.upload("mydata", f"{ctx.user.id}.json", ctx.t("mydata_sent")) as path:
        write_private(path, data)
    return ctx.t("mydata_sent")
