"""The neutral commands (bot.commands.COMMANDS) as native Discord slash commands.

Each is described in English, with the German text from bot/locales as its translation, and
takes the argument its command declares (name, required or not, choices); the frontend runs
every one of them as the text "/name argument" through the router, so Discord users can do
exactly what everyone else can, with the same words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.commands import COMMANDS, Argument, Command, describe
from bot.i18n import t

if TYPE_CHECKING:
    from bot.services import Services

# (interaction, command name, argument) -> answered through the router
Run = Callable[[discord.Interaction, str, str], Awaitable[None]]
Callback = Callable[..., Coroutine[Any, Any, None]]  # a slash command's, as discord.py takes it

# Discord's locales that get one of our languages; every other locale sees the English text.
LOCALES = {discord.Locale.german: "de"}
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
    client: discord.Client, run: Run, services: Services,
    guild: discord.abc.Snowflake | None = None,
) -> app_commands.CommandTree:
    """A command tree with every neutral command, choices as the bot has them now."""
    tree = app_commands.CommandTree(client)
    for command in COMMANDS.values():
        tree.add_command(slash_command(command, run, services), guild=guild)
    return tree


def slash_command(command: Command, run: Run, services: Services) -> app_commands.Command:
    name, argument = command.name, command.argument
    description = app_commands.locale_str(describe(name, "en"), key=f"commands.{name}")
    if argument is None:
        callback = _without_argument(name, run)
    else:
        callback = _with_argument(name, run, argument, description, services)
    slash: app_commands.Command[Any, ..., None] = app_commands.Command(
        name=name, description=description, callback=callback)
    if command.scope == "admin":
        slash.default_permissions = ADMIN_PERMISSIONS
    return slash


def _with_argument(
    name: str, run: Run, argument: Argument, description: app_commands.locale_str,
    services: Services,
) -> Callback:
    async def required(interaction: discord.Interaction, argument: str) -> None:
        await run(interaction, name, argument)

    async def optional(interaction: discord.Interaction, argument: str = "") -> None:
        await run(interaction, name, argument)

    callback: Callback = required if argument.required else optional
    callback = app_commands.describe(argument=description)(callback)
    callback = app_commands.rename(argument=argument.name)(callback)
    values = argument.values(services)
    if values:
        options = [app_commands.Choice(name=value, value=value) for value in values]
        callback = app_commands.choices(argument=options[:25])(callback)
    return callback


def _without_argument(name: str, run: Run) -> Callback:
    async def callback(interaction: discord.Interaction) -> None:
        await run(interaction, name, "")

    return callback
