"""A command that acts on the bot (a job, the active adapter, a pin) and is delivered again
after a restart is not run again: the chat is told what became of it. The bot is killed during
a /retrain job, as a process, and started again on the same data."""

from __future__ import annotations

from bot.events import Incoming
from bot.i18n import t
from tests.fake_job import hanging_launcher
from tests.fake_telegram import FakeTelegram
from tests.harness import RecordingSink, bot_process
from tests.telegram_bot import PEOPLE


def chat_texts(fake: FakeTelegram) -> list[str]:
    return [m.get("text", "") for m in fake.sent(fake.private(PEOPLE[0]))]


async def test_killed_during_a_retrain_job_the_restart_starts_no_second_job_and_says_so(
        tmp_path):
    admin = PEOPLE[0]
    body = (f'admins = ["telegram:{admin.id}"]\n'
            f'[finetune]\nlauncher = "{hanging_launcher(tmp_path)}"')
    async with bot_process("telegram", tmp_path) as (fake, bot):
        await bot.start(body)
        fake.say(fake.private(admin), admin, "/retrain")
        await fake.wait_for(lambda: any("step 1/100" in x for x in chat_texts(fake)),
                            "the job running, its progress shown", 30)
        await bot.kill()
        await bot.start(body)
        told = t("en", "replay_job_interrupted", job=1)
        await fake.wait_for(lambda: told in chat_texts(fake), "the chat told", 30)
        assert await bot.stop() == 0
    assert chat_texts(fake) == [told]  # the job's status message, edited: nothing else sent
    jobs = bot.rows("SELECT id, status, detail FROM jobs")
    assert jobs == [(1, "failed", "the bot stopped while the job ran")]  # no second job
    assert bot.rows("SELECT COUNT(*) FROM inbox WHERE done_at IS NULL") == [(0,)]


async def test_rollback_and_adapter_delivered_again_are_not_run_again(serve):
    async with serve('admins = ["console:boss"]') as router:
        for text, name in (("/rollback", "rollback"), ("/adapter base", "adapter"),
                           ("/retrain", "retrain")):
            sink = RecordingSink()
            await router.handle(Incoming("console", "c1", "boss", text, message_id="7",
                                         redelivered=True), sink)
            assert sink.final == t("en", "replay_not_run", name=name)
        chat = await router.store.chat("console", "c1")
        assert chat.adapter == ""  # the pin was not carried out
        sink = RecordingSink()  # delivered once, it runs
        await router.handle(Incoming("console", "c1", "boss", "/adapter base"), sink)
        assert sink.final == t("en", "adapter_pinned", adapter="base")


async def test_a_redelivered_command_that_only_reads_still_answers(serve):
    async with serve('admins = ["console:boss"]') as router:
        sink = RecordingSink()
        await router.handle(Incoming("console", "c1", "boss", "/adapters", redelivered=True),
                            sink)
        assert sink.final == t("en", "adapters_none")
