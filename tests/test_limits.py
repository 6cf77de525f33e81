"""Compute budgets and request limits ([policy] budget_*, max_input_chars,
max_probe_alternatives), and votes under the rate limit: refused before any engine work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from bot.app import App
from bot.budget import Budgets, estimate, reply_cost
from bot.config import BotOptions, PolicyOptions, load_config
from bot.events import Incoming, Reaction
from bot.frontends import FRONTENDS
from bot.i18n import t
from engines.base import Capability, Conversation, Engine
from engines.registry import BUILTIN
from tests.harness import RecordingSink, say, votes_on, write_config

PLUGINS = ('[plugins]\nengines = { echo = "tests.engines:EchoEngine", '
           'counting = "tests.test_limits:CountingEngine" }\n')


def serving(tmp_path, body: str = ""):
    """The echo engine by default, and the counting one by /engine counting."""
    path = write_config(tmp_path / "config.toml", '[bot]\ndefault_engine = "echo"\n' + body
                        + PLUGINS, engines=False)
    config = load_config(path, FRONTENDS, BUILTIN, data_dir=str(tmp_path / "data"))
    return App(config, [], env={}).serving()


class CountingEngine(Engine):
    """Counts every call the bot makes into it (replies, probes, next words)."""

    name: ClassVar[str] = "counting"
    capabilities = frozenset({Capability.PROBE, Capability.NEXT_WORDS})
    calls: ClassVar[list[str]] = []

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        self.calls.append("reply")
        yield "counted"

    async def probe(self, context: str, continuations: list[str], lang: str,
                    chat: str = "") -> list[float]:
        self.calls.append("probe")
        return [-1.0] * len(continuations)

    async def next_words(self, text: str, lang: str, k: int = 5,
                         chat: str = "") -> list[tuple[str, float]]:
        self.calls.append("next")
        return [("word", 1.0)]


def person(user: str = "u1", text: str = "") -> Incoming:
    return Incoming(platform="test", chat_id="c1", user_id=user, text=text)


async def test_an_over_long_probe_is_refused_before_any_engine_call(tmp_path):
    CountingEngine.calls.clear()
    body = '[policy]\nmax_probe_alternatives = 3\nmax_input_chars = 200\n'
    async with serving(tmp_path, 'admins = ["test:boss"]\n' + body) as router:
        await say(router, "/engine counting")
        many = "/probe the doctor said | " + " | ".join(f"w{i}" for i in range(30))
        assert (await say(router, many)).final == t("en", "probe_too_many", count=30, limit=3)
        long = "/probe " + "x " * 120 + "| a | b"
        assert (await say(router, long)).final == t("en", "too_long", limit=200)
        assert (await say(router, "y" * 201)).final == t("en", "too_long", limit=200)
        assert CountingEngine.calls == []  # none of them reached the engine
        assert "a  " in (await say(router, "/probe the doctor said | a | b | c")).final
        assert CountingEngine.calls == ["probe"]
        assert "w29" in (await say(router, many, user="boss")).final  # bot admins are not limited
        assert CountingEngine.calls == ["probe", "probe"]


async def test_a_spent_budget_refuses_replies_and_scoring_until_it_refills(tmp_path):
    CountingEngine.calls.clear()
    async with serving(tmp_path, '[policy]\nbudget_tokens = 20\nbudget_per_minute = 6\n'
                       ) as router:
        await say(router, "/engine counting")
        question = "a question of forty characters, or so!!"
        answers = [(await say(router, question)).final for _ in range(3)]
        # 12 tokens each (10 asked, 2 answered) from 20: the second leaves a debt of 4
        assert estimate(question) + estimate("counted") == 12
        assert answers[:2] == ["counted", "counted"]
        assert answers[2].startswith("You have used your share") and "(6 tokens a minute" in \
            answers[2]
        assert (await say(router, "/next some words")).final.startswith("You have used your share")
        assert CountingEngine.calls == ["reply", "reply"]  # the refused asked nothing
        assert (await say(router, "/help")).final is not None  # commands without engines go on
        assert (await say(router, "me too", user="u2")).final == "counted"  # one person's budget
        too_big = "/probe " + "long context " * 10 + "| a | b"
        refused = (await say(router, too_big, user="u3")).final
        assert "more than anyone may spend at once (20)" in refused


def test_budgets_refill_at_the_rate_and_exempt_admins():
    now = [0.0]
    budgets = Budgets(PolicyOptions(budget_tokens=100, budget_per_minute=60),
                      BotOptions(admins=["test:boss"]), clock=lambda: now[0])
    budgets.charge(person(), 130)  # one long reply: a debt of 30
    assert budgets.left("test:u1") == -30
    assert "Try again in 31 s" in budgets.refusal(person(), "en")
    now[0] = 31.0
    assert budgets.refusal(person(), "en") is None
    now[0] = 1000.0
    assert budgets.left("test:u1") == 100  # never more than a full budget
    budgets.charge(person("boss"), 10**6)
    assert budgets.refusal(person("boss"), "en", cost=10**6) is None
    off = Budgets(PolicyOptions(budget_tokens=0), BotOptions())
    off.charge(person(), 10**6)
    assert off.refusal(person(), "en", cost=10**6) is None


def test_a_reply_costs_what_the_engine_counted_else_an_estimate():
    assert reply_cost({"tokens_in": 300, "tokens_out": 20}, "hi", "there") == 320
    assert reply_cost({}, "x" * 40, "y" * 8) == 10 + 2


async def test_a_vote_storm_is_dropped_and_nothing_else_is_lost(serve):
    async with serve('[policy]\nrate_per_minute = 3\n') as router:
        sink = RecordingSink()
        await router.handle(Incoming("test", "c1", "u1", "rate me"), sink)  # 1 of 3
        reply = f"sent-{id(sink)}"
        storm = [Reaction("test", "c1", "u1", reply, emoji, added)
                 for emoji, added in [("👍", True), ("👎", True)] * 10]
        counted = [await router.react(r) for r in storm]
        assert counted == [True, True] + [False] * 18  # the minute's 3 events are spent
        assert await votes_on(router.store, await router.store.reply_for(
            await router.store.find_chat("test", "c1"), reply)) == [("u1", -1)]
        assert await router.react(Reaction("test", "c1", "u2", reply, "👍"))  # others vote
        assert (await say(router, "still answered", user="u2")).final == "echo: still answered"
