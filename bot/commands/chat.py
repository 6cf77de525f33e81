"""Commands about the chat itself: which engine answers, in which language, from where."""

from __future__ import annotations

from bot.commands import COMMANDS, Argument, CommandCall, command, describe
from bot.i18n import LANGUAGES, t
from bot.policy import without_url_credentials
from engines.base import EngineUnavailable

ASK_WAIT = 3.0  # seconds /engines waits for a remote server's first health check


@command("help")
async def help_(ctx: CommandCall) -> str:
    lines = [ctx.t("help_header")]
    for cmd in COMMANDS.values():
        mark = f" {ctx.t('admin_mark')}" if cmd.scope == "admin" else ""
        lines.append(f"{cmd.usage} – {describe(cmd.name, ctx.lang)}{mark}")
    return "\n".join(lines)


@command("engines")
async def engines(ctx: CommandCall) -> str:
    lines = [ctx.t("engines_header", current=ctx.engine_name)]
    await ctx.engines.start_when_asked(wait=ASK_WAIT)  # the remote server: up or not
    for name in ctx.engines.names:
        state, version, detail = ctx.engines.status(name)
        text = ctx.t(f"engine_states.{state}")
        # why one is not ready (paths, exceptions) is for admins; a loading one's progress
        # (a download's MB) is for everyone
        if state not in ("ready", "loading") and detail:
            detail = ctx.detail(detail)
        shown = "; ".join(part for part in (version, detail) if part)
        lines.append(f"• {name}: {text}" + (f" ({shown})" if shown else ""))
    return without_url_credentials("\n".join(lines))


@command("engine", scope="chat_admin",
         argument=Argument("name", choices=lambda services: services.engines.names))
async def engine(ctx: CommandCall) -> str:
    name = ctx.args.split()[0].lower() if ctx.args else ""
    if name not in ctx.engines.names:
        return ctx.t("engine_usage", names=", ".join(ctx.engines.names))
    try:
        chosen = await ctx.engines.get(name)
    except EngineUnavailable as exc:
        return ctx.t("engine_unavailable", engine=name, reason=ctx.detail(exc))
    await ctx.store.set_chat(ctx.chat, engine=name)
    greeting = chosen.greeting(ctx.lang)
    return ctx.t("engine_set", engine=name) + (f"\n{greeting}" if greeting else "")


@command("reset")
async def reset(ctx: CommandCall) -> str:
    await ctx.store.reset_chat(ctx.chat)
    return ctx.t("reset_done")


@command("status")
async def status(ctx: CommandCall) -> str:
    state, version, _ = ctx.engines.status(ctx.engine_name)
    version = version if state == "ready" else ctx.t(f"engine_states.{state}")
    stats = await ctx.store.chat_stats(ctx.chat)
    return ctx.t("status", engine=ctx.engine_name, version=version, lang=ctx.lang, **stats)


@command("lang", scope="chat_admin", argument=Argument("language", choices=LANGUAGES))
async def lang(ctx: CommandCall) -> str:
    choice = ctx.args.strip().lower()
    if choice not in LANGUAGES:
        return ctx.t("lang_usage")
    await ctx.store.set_chat(ctx.chat, lang=choice)
    return t(choice, "lang_set")
