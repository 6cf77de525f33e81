"""The neutral commands (bot.commands.COMMANDS) as native Discord slash commands.

Each is described in English, with the German text from bot/locales as its translation; the
frontend runs every one of them as the text "/name argument" through the router, so Discord
users can do exactly what everyone else can, with the same words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import discord
from discord import app_commands

from bot.commands import COMMANDS, Command, describe
from bot.i18n import LANGUAGES, t

# (interaction, command name, argument) -> answered through the router
Run = Callable[[discord.Interaction, str, str], Awaitable[None]]

# Discord's locales that get one of our languages; every other locale sees the English text.
LOCALES = {discord.Locale.german: "de"}
# The option's name where "argument" would say too little.
OPTION_NAMES = {"engine": "name", "lang": "language"}
# Members with this permission see the admin-only commands; the router still checks the user.
ADMIN_PERMISSIONS = discord.Permissions(manage_guild=True)


class LocaleTranslator(app_commands.Translator):
    """Descriptions carry their bot/locales key; Discord gets them in every language we have."""

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        lang, key = LOCALES.get(locale), string.extras.get("key")
        return t(lang, key) if lang and key else None


def build_tree(
    client: discord.Client, run: Run, choices: dict[str, Iterable[str]],
    guild: discord.abc.Snowflake | None = None,
) -> app_commands.CommandTree:
    """A command tree with every neutral command; `choices` offers values for some of them."""
    tree = app_commands.CommandTree(client)
    for command in COMMANDS.values():
        tree.add_command(slash_command(command, run, choices.get(command.name)), guild=guild)
    return tree


def default_choices(engine_names: Iterable[str]) -> dict[str, Iterable[str]]:
    return {"engine": list(engine_names), "lang": LANGUAGES}


def takes_argument(name: str) -> bool:
    """Commands that take one show how in their description ("... /next TEXT")."""
    return f"/{name} " in describe(name, "en")


def slash_command(
    command: Command, run: Run, choices: Iterable[str] | None,
) -> app_commands.Command:
    name = command.name
    description = app_commands.locale_str(describe(name, "en"), key=f"commands.{name}")
    callback = _with_argument(name, run) if takes_argument(name) else _without_argument(name, run)
    if takes_argument(name):
        callback = app_commands.describe(argument=description)(callback)
        callback = app_commands.rename(argument=OPTION_NAMES.get(name, "text"))(callback)
        if choices is not None:
            options = [app_commands.Choice(name=value, value=value) for value in choices]
            callback = app_commands.choices(argument=options[:25])(callback)
    slash = app_commands.Command(name=name, description=description, callback=callback)
    if command.scope == "admin":
        slash.default_permissions = ADMIN_PERMISSIONS
    return slash


def _with_argument(name: str, run: Run) -> Callable[..., Awaitable[None]]:
    async def callback(interaction: discord.Interaction, argument: str) -> None:
        await run(interaction, name, argument)

    return callback


def _without_argument(name: str, run: Run) -> Callable[..., Awaitable[None]]:
    async def callback(interaction: discord.Interaction) -> None:
        await run(interaction, name, "")

    return callback
