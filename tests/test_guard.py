"""The live guard: a simulated chat votes on the replies of the base model, an admin's /retrain
promotes an adapter (a stand-in job, tests/fake_job.py, as a real process), and the chat votes
on the adapter's replies. Disliked much more than the base model, it is rolled back after
enough votes, with the reason in the store and its manifest and a message to the chat that
started the job; liked as much (the difference only noise), it stays. Seeded, several runs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from statistics import NormalDist

import pytest

from bot.adapters import MANIFEST
from bot.events import Incoming, Reaction
from bot.guard import Tally, drop_p_value, rollback_p_value
from bot.i18n import t
from bot.store import MIGRATIONS, Adapter, Store
from bot.store import migrations as store_module
from tests.fake_job import ACCURACY, fake_python
from tests.harness import ChatSink, eventually, running_bot

MIN_VOTES, ALPHA = 30, 0.05
BODY = (f'admins = ["test:admin"]\n[finetune]\nguard_min_votes = {MIN_VOTES}\n'
        f'guard_alpha = {ALPHA}\n')
BASE_LIKED = 0.75  # the share of 👍 the base model's replies get
BASE_VOTES = 80
WATCHED = 200  # votes on the adapter's replies before a test gives up waiting


class SimulatedChat:
    """Replies stored as the transformer's, each voted on by one person through a reaction, as
    a frontend hands it to the router; the guard looks after every vote."""

    def __init__(self, router, rng: random.Random) -> None:
        self.router, self.rng = router, rng
        self.order: list[str] = []
        self.counted: dict[str, dict[str, list[int]]] = {}  # version -> person -> [👍, votes]
        self.sent = 0

    def tally(self, version: str) -> Tally:
        """What the simulation counted on `version`, person by person (the store's order)."""
        people = self.counted[version]
        return Tally(tuple(tuple(people[p]) for p in sorted(people, key=self.order.index)))

    async def vote_on(self, version: str, liked: float, person: str | None = None) -> None:
        chat = await self.router.store.chat("test", "class")
        self.sent += 1
        platform_id = f"r{self.sent}"
        await self.router.store.add_message(chat, None, "bot", "a reply", engine="transformer",
                                            engine_version=version, platform_ids=[platform_id])
        up = self.rng.random() < liked
        person = person or f"p{self.rng.randrange(40)}"
        await self.router.react(Reaction("test", "class", person, platform_id,
                                         "👍" if up else "👎"))
        if person not in self.order:
            self.order.append(person)  # the store numbers people as they first appear
        tally = self.counted.setdefault(version, {}).setdefault(person, [0, 0])
        tally[0] += up
        tally[1] += 1


async def retrain(router, tmp_path) -> list[str]:
    """/retrain from an admin in the chat; returns the chat's messages."""
    router.services.jobs.python = fake_python(tmp_path)
    chat: list[str] = []
    await router.handle(Incoming("test", "class", "admin", "/retrain", user_name="admin"),
                        ChatSink(chat))
    assert await router.store.active_adapter() == "ft1", chat
    return chat


async def run(router, tmp_path, seed: int, liked: float) -> tuple[SimulatedChat, list[str], int]:
    """Base votes, /retrain, then votes on ft1 until it is rolled back or WATCHED are cast;
    returns the chat, its messages and the number of votes on ft1 when it ended."""
    simulated = SimulatedChat(router, random.Random(seed))
    for _ in range(BASE_VOTES):
        await simulated.vote_on("base", BASE_LIKED)
    chat = await retrain(router, tmp_path)
    for votes in range(1, WATCHED + 1):
        await simulated.vote_on("ft1", liked)
        if await router.services.guard.check() is not None:
            return simulated, chat, votes
    return simulated, chat, WATCHED


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_an_adapter_the_chat_dislikes_is_rolled_back_and_the_admins_are_told(
        serve, tmp_path, seed):
    async with serve(BODY) as router:
        simulated, chat, votes = await run(router, tmp_path, seed, liked=0.35)
        assert votes in (MIN_VOTES, 2 * MIN_VOTES, 4 * MIN_VOTES)  # at a checkpoint
        assert await router.store.active_adapter() == ""  # the base model serves again
        [adapter] = await router.store.adapters()
        assert adapter.status == "retired" and adapter.rolled_back_at is not None
        new, old = simulated.tally("ft1"), simulated.tally("base")
        p_value = rollback_p_value(new.approvals(), old.approvals())
        level = ALPHA / (2 * votes // MIN_VOTES)  # half of alpha at 30, a quarter at 60, ...
        assert p_value < level and new.votes == votes and len(new.people) >= 5
        guard = adapter.metrics["guard"]
        assert (guard["up_new"], guard["votes_new"], guard["people_new"], guard["up_old"],
                guard["votes_old"], guard["people_old"]) == (
            new.up, new.votes, len(new.people), old.up, old.votes, len(old.people))
        assert adapter.reason.startswith("rolled back by the live guard")
        assert f"{new} since its promotion against {old}" in adapter.reason
        manifest = json.loads((tmp_path / "data" / "adapters" / "ft1" / MANIFEST).read_text())
        assert manifest["rolled_back"]["reason"] == adapter.reason
        assert manifest["id"] == "ft1"  # what the job wrote stays
        assert chat[-1] == t("en", "guard_rolled_back", adapter="ft1", active="base",
                             new=str(new), old=str(old), p=f"{p_value:.2g}")
        assert f"p = {p_value:.2g} < {level:.2g}" in adapter.reason
        assert len(chat) == 2  # the job's own answer, then the guard's
        assert await router.services.guard.check() is None  # the base model is not judged


# Not seed 4: there the adapter's first 30 votes are 16 👍 against the base model's 64 of 80,
# a draw chance gives about once in 300 (p = 0.0026), and the guard rolls back, as it should at
# that evidence. How often noise fools it over many runs is what bench/guard.py measures.
@pytest.mark.parametrize("seed", [1, 2, 3, 5, 6])
async def test_an_adapter_liked_as_much_stays_whatever_the_noise(serve, tmp_path, seed):
    async with serve(BODY) as router:
        simulated, chat, votes = await run(router, tmp_path, seed, liked=BASE_LIKED)
        assert votes == WATCHED and simulated.tally("ft1").votes == WATCHED
        assert await router.store.active_adapter() == "ft1"
        [adapter] = await router.store.adapters()
        assert adapter.rolled_back_at is None and "guard" not in adapter.metrics
        assert len(chat) == 1


async def test_no_verdict_before_the_minimum_of_votes_however_bad(serve, tmp_path):
    async with serve(BODY) as router:
        simulated = SimulatedChat(router, random.Random(0))
        for _ in range(MIN_VOTES):
            await simulated.vote_on("base", 1.0)
        await retrain(router, tmp_path)
        for _ in range(MIN_VOTES - 1):
            await simulated.vote_on("ft1", 0.0)
            assert await router.services.guard.check() is None
        standing = await router.services.guard.standing()
        assert (standing.new.votes, standing.new.up, standing.p_value < ALPHA) == (29, 0, True)
        await simulated.vote_on("ft1", 0.0)
        assert (await router.services.guard.check()).new.votes == MIN_VOTES


async def test_it_judges_even_when_the_replaced_one_had_few_votes(serve, tmp_path):
    async with serve(BODY) as router:
        simulated = SimulatedChat(router, random.Random(0))
        for person in ("o1", "o2", "o3", "o1"):  # three people, four votes: all 👍
            await simulated.vote_on("base", 1.0, person)
        await retrain(router, tmp_path)
        for _ in range(MIN_VOTES):
            await simulated.vote_on("ft1", 0.0)
        standing = await router.services.guard.check()
        assert standing is not None and len(standing.old.people) == 3
        assert await router.store.active_adapter() == ""


async def test_adapters_shows_held_out_accuracy_beside_live_approval(serve, tmp_path):
    async with serve(BODY) as router:
        simulated, _, _ = await run(router, tmp_path, 1, liked=0.35)
        sink = ChatSink([])
        await router.handle(Incoming("test", "class", "admin", "/adapters"), sink)
        [line] = [x for x in sink.chat[-1].split("\n") if "ft1" in x]
        assert line.startswith(f"• ft1: {t('en', 'adapter_rolled_back')}, held-out accuracy "
                               f"{ACCURACY:.2f} rolled back by the live guard")
        assert line.endswith(t("en", "adapter_live", share=str(simulated.tally("ft1"))))


async def test_the_guard_also_watches_on_its_own_and_an_alpha_of_0_turns_it_off(serve, tmp_path):
    async with serve(BODY.replace(f"guard_alpha = {ALPHA}", "guard_alpha = 0")) as router:
        simulated = SimulatedChat(router, random.Random(0))
        for _ in range(MIN_VOTES):
            await simulated.vote_on("base", 1.0)
        await retrain(router, tmp_path)
        for _ in range(MIN_VOTES):
            await simulated.vote_on("ft1", 0.0)
        assert await router.services.guard.check() is None
        guard = router.services.guard
        guard.options = dataclasses.replace(guard.options, guard_alpha=ALPHA)
        watching = asyncio.create_task(guard.watch(every=0.01))
        try:
            async with asyncio.timeout(10):
                while await router.store.active_adapter():
                    await asyncio.sleep(0.01)
        finally:
            watching.cancel()
        assert (await router.store.adapters())[0].rolled_back_at is not None


def once_each(up: int, votes: int) -> list[float]:
    """The approvals of `votes` people who voted once each, `up` of them 👍."""
    return [1.0] * up + [0.0] * (votes - up)


@pytest.mark.parametrize(("up_new", "n_new", "up_old", "n_old"),
                         [(10, 40, 60, 80), (30, 40, 60, 80), (5, 30, 20, 30), (0, 30, 30, 30)])
def test_with_one_vote_a_person_it_is_the_pooled_z_test_on_votes(up_new, n_new, up_old, n_old):
    pooled = (up_new + up_old) / (n_new + n_old)
    se = (pooled * (1 - pooled) * (1 / n_new + 1 / n_old)) ** 0.5
    z = (up_old / n_old - up_new / n_new) / se
    p_value = drop_p_value(once_each(up_new, n_new), once_each(up_old, n_old))
    assert p_value == pytest.approx(1 - NormalDist().cdf(z), abs=1e-12)


def test_equal_shares_give_a_half_and_nothing_to_compare_gives_one():
    assert drop_p_value(once_each(20, 40), once_each(10, 20)) == pytest.approx(0.5)
    assert drop_p_value([], once_each(10, 20)) == drop_p_value(once_each(5, 10), []) == 1.0
    assert drop_p_value([1.0] * 10, [1.0] * 20) == 1.0  # everyone all 👍: no spread
    assert (drop_p_value(once_each(12, 40), once_each(30, 40)) < 0.001
            < drop_p_value(once_each(28, 40), once_each(30, 40)))


def test_a_person_weighs_once_however_many_votes():
    one_loud = Tally(((0, 30), (4, 4), (3, 3), (5, 5), (2, 2)))  # one person's 30 👎
    assert (one_loud.up, one_loud.votes, len(one_loud.people)) == (14, 44, 5)
    assert one_loud.approval == pytest.approx(0.8)  # four of five people like it all
    old = Tally(((3, 4), (4, 5), (2, 3), (5, 6), (3, 4), (4, 4)))
    by_person = drop_p_value(one_loud.approvals(), old.approvals())
    by_vote = drop_p_value(once_each(one_loud.up, one_loud.votes), once_each(old.up, old.votes))
    assert by_vote < 0.001 < 0.3 < by_person  # counted by votes the loud one would win
    assert str(one_loud) == "14/44 👍 from 5 people (80%)"


def test_no_rollback_hangs_on_the_person_who_liked_it_least():
    old = [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    new = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    assert rollback_p_value(new, old) == drop_p_value([0.0, 0.0, 1.0, 1.0, 1.0, 1.0], old)
    assert rollback_p_value(new, old) > drop_p_value(new, old)
    assert rollback_p_value([0.0], [1.0] * 20) == 1.0  # one person alone: nothing left to judge


async def test_m007_keeps_old_adapters_and_rollbacks_from_then_on_carry_a_time(
        tmp_path, monkeypatch):
    step = next(i for i, m in enumerate(MIGRATIONS) if m.__name__ == "m007_adapter_rollback_time")
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:step])  # a database from before
    old = await Store.open(tmp_path / "bot.db")
    await old.add_adapter(Adapter("a", "tiny", "/x/a", "candidate", {}))
    await old.add_adapter(Adapter("b", "tiny", "/x/b", "retired", {}))  # rolled back back then
    await old.db.execute("UPDATE adapters SET status = 'active', promoted_at = 1 WHERE id = 'a'")
    await old.db.commit()
    await old.close()
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    store = await Store.open(tmp_path / "bot.db")
    try:
        found = {a.id: (a.status, a.promoted_at, a.rolled_back_at) for a in await store.adapters()}
        assert found == {"a": ("active", 1, None), "b": ("retired", None, None)}
        await store.add_adapter(Adapter("c", "tiny", "/x/c", "candidate", {}))
        await store.promote("c")
        assert await store.replaced("c") == "a"
        assert await store.rollback(only="a") == ("", "")  # not the active one: nothing
        assert await store.rollback(why={"reason": "r"}) == ("c", "a")
        c = next(a for a in await store.adapters() if a.id == "c")
        assert c.rolled_back_at >= c.promoted_at and c.reason == "r"
        await store.promote("a")  # anew: the one before it, c, was rolled back
        assert await store.replaced("a") == ""  # c was rolled back: never reinstated
        await store.promote("c")  # an admin's second chance: its rollback time goes
        assert next(a for a in await store.adapters() if a.id == "c").rolled_back_at is None
    finally:
        await store.close()


async def test_on_telegram_the_admin_who_started_the_job_is_told_in_that_chat(tmp_path):
    from tests.telegram_bot import ADA

    async with running_bot("telegram", tmp_path) as bot:
        router = bot.router
        router.services.jobs.python = fake_python(tmp_path)
        simulated = SimulatedChat(router, random.Random(0))
        for _ in range(MIN_VOTES):
            await simulated.vote_on("base", 1.0)
        chat = bot.fake.private(ADA)
        done = await bot.reply_to(chat, ADA, "/retrain")
        assert "ft1" in done[-1]["text"] and await router.store.active_adapter() == "ft1"
        for _ in range(MIN_VOTES):
            await simulated.vote_on("ft1", 0.0)
        before = len(bot.fake.sent(chat))
        standing = await router.services.guard.check()
        await bot.fake.wait_for(lambda: len(bot.fake.sent(chat)) > before, "the guard's message")
        [told] = bot.fake.sent(chat)[before:]
        assert told["text"] == t("en", "guard_rolled_back", adapter="ft1", active="base",
                                 new=str(simulated.tally("ft1")),
                                 old=str(simulated.tally("base")), p=f"{standing.p_value:.2g}")
        assert await router.store.active_adapter() == ""


async def test_on_discord_the_channel_where_the_job_started_is_told(tmp_path):
    from tests.discord_bot import MOD
    from tests.fake_discord import CHANNEL_ID

    async with running_bot("discord", tmp_path, 'admins = ["discord:13"]') as bot:
        router = bot.router
        router.services.jobs.python = fake_python(tmp_path)
        simulated = SimulatedChat(router, random.Random(0))
        for _ in range(MIN_VOTES):
            await simulated.vote_on("base", 1.0)
        done = await bot.mention("/retrain", author=MOD)
        assert "ft1" in done.text and await router.store.active_adapter() == "ft1"
        for _ in range(MIN_VOTES):
            await simulated.vote_on("ft1", 0.0)
        before = len(bot.fake.in_channel(CHANNEL_ID))
        standing = await router.services.guard.check()
        told = await bot.fake.until(lambda: bot.fake.in_channel(CHANNEL_ID)[before:])
        assert [m.text for m in told] == [t(
            "en", "guard_rolled_back", adapter="ft1", active="base",
            new=str(simulated.tally("ft1")), old=str(simulated.tally("base")),
            p=f"{standing.p_value:.2g}")]


async def test_on_telegram_one_persons_30_dislikes_roll_nothing_back_five_peoples_do(tmp_path):
    from tests.fake_telegram import Person
    from tests.telegram_bot import ADA

    async with running_bot("telegram", tmp_path) as bot:
        router, guard = bot.router, bot.router.services.guard
        router.services.jobs.python = fake_python(tmp_path)
        simulated = SimulatedChat(router, random.Random(0))
        for _ in range(MIN_VOTES):
            await simulated.vote_on("base", 1.0)
        await bot.reply_to(bot.fake.private(ADA), ADA, "/retrain")
        assert await router.store.active_adapter() == "ft1"
        group = bot.fake.group()
        chat = await router.store.chat("telegram", str(group.id))

        async def dislike(people: list[Person], replies: int) -> None:
            """The adapter's next `replies` replies in the group, each 👎 by the next person."""
            before = (await guard.standing()).new.votes
            for n in range(replies):
                message_id = 5000 + before + n
                await router.store.add_message(chat, None, "bot", "a reply",
                                               engine="transformer", engine_version="ft1",
                                               platform_ids=[str(message_id)])
                bot.fake.react(group, people[n % len(people)], message_id, [], ["👎"])
            await eventually(lambda: _votes_on_ft1(guard, before + replies), "the votes")

        await dislike([Person(66, "Mallory")], MIN_VOTES)
        standing = await guard.standing()
        assert (standing.new.votes, len(standing.new.people)) == (MIN_VOTES, 1)
        new, old = standing.new, standing.old
        by_votes = drop_p_value(once_each(new.up, new.votes), once_each(old.up, old.votes))
        assert by_votes < standing.level < standing.p_value  # counted by votes: a clear drop
        assert await guard.check() is None and await router.store.active_adapter() == "ft1"
        await dislike([Person(70 + i, f"P{i}") for i in range(5)], MIN_VOTES)
        rolled_back = await guard.check()
        assert rolled_back is not None and len(rolled_back.new.people) == 6
        assert await router.store.active_adapter() == ""
        assert "from 6 people (0%)" in (await router.store.adapters())[0].reason


async def _votes_on_ft1(guard, votes: int) -> bool:
    return (await guard.standing()).new.votes == votes
