"""/adapters sends the loss curve as a file where the platform can: Telegram (sendDocument)
and Discord (an attachment), end to end against the fake servers."""

from __future__ import annotations

from bot.store import Adapter
from tests import discord_bot, telegram_bot
from tests.harness import running_bot

PNG = b"\x89PNG\r\n\x1a\n fake curve"


async def add_adapter(router, folder) -> None:
    folder.mkdir(parents=True)
    (folder / "loss_curve.png").write_bytes(PNG)
    await router.store.add_adapter(Adapter("ft1-x", "tiny", str(folder), "active", {}))


async def test_telegram_adapters_sends_the_loss_curve_as_a_document(tmp_path):
    ada = telegram_bot.ADA
    async with running_bot("telegram", tmp_path) as bot:
        await add_adapter(bot.router, tmp_path / "ft1-x")
        sent = await bot.reply_to(bot.fake.private(ada), ada, "/adapters", count=2)
        [document] = [m for m in sent if "document" in m]
        assert document["caption"] == "Loss curve of ft1-x"
        assert document["document"] == {"file_id": document["document"]["file_id"],
                                         "file_unique_id": "u", "file_name": "loss_curve.png",
                                         "file_size": len(PNG)}
        assert any("ft1-x: active" in m.get("text", "") for m in sent)


async def test_discord_adapters_attaches_the_loss_curve_by_slash_command_and_by_mention(tmp_path):
    mod = discord_bot.MOD  # a bot admin by the config below
    async with running_bot("discord", tmp_path, 'admins = ["discord:13"]') as bot:
        await add_adapter(bot.router, tmp_path / "ft1-x")
        answer = await bot.command("adapters", author=mod)
        assert "ft1-x: active" in answer.text
        reply = await bot.mention("/adapters", author=mod)
        assert "ft1-x: active" in reply.text
        uploads = [m for m in bot.fake.messages.values() if m.files]
        assert [m.text for m in uploads] == ["Loss curve of ft1-x"] * 2
        assert all(m.files == [{"filename": "loss_curve.png", "size": len(PNG)}]
                   for m in uploads)
