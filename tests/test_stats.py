"""/stats: approval per engine version from the votes in a real SQLite store, as text, and as a
PNG chart on Telegram and Discord (checked from the series behind it, not from pixels)."""

from __future__ import annotations

import math
import time
from statistics import NormalDist

import pytest

from bot.commands import stats as stats_module
from bot.i18n import t
from bot.store import Adapter, Store
from tests import telegram_bot
from tests.harness import running_bot, say

TODAY = time.strftime("%Y-%m-%d", time.gmtime())
# (engine, version) -> (👍, 👎) cast today; the numbers every test below expects
SEEDED = {("ngram", "ngram-1"): (3, 1), ("transformer", "ft1"): (1, 2),
          ("transformer", "ft2"): (4, 0)}


def wilson_by_quadratic(up: int, n: int) -> tuple[float, float]:
    """The Wilson interval as the roots p of n(p̂ - p)² = z² p(1 - p), solved directly."""
    z = NormalDist().inv_cdf(0.975)
    share = up / n
    a, b, c = n + z * z, -(2 * n * share + z * z), n * share * share
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


async def seed(store: Store, platform: str = "test") -> None:
    """Each (engine, version) reply gets its 👍 and 👎 from different people, plus two votes
    that must not count: one from someone who opted out, one cast 40 days ago."""
    chat = await store.chat(platform, "seeded")
    people = [await store.user(platform, f"voter{i}") for i in range(5)]
    for (engine, version), (up, down) in SEEDED.items():
        reply = await store.add_message(chat, None, "bot", "a reply", engine=engine,
                                        engine_version=version)
        for person, value in zip(people, [1] * up + [-1] * down, strict=False):
            await store.vote(reply, person, value, "👍" if value > 0 else "👎")
    old = await store.add_message(chat, None, "bot", "old", engine="ngram", engine_version="old")
    await store.vote(old, people[0], 1, "👍")
    await store.db.execute("UPDATE feedback SET created_at = ? WHERE message_id = ?",
                           (time.time() - 40 * 86400, old))
    hidden = await store.user(platform, "opted-out")
    await store.vote(reply, hidden, -1, "👎")  # on the last reply: ft2 would lose its 4-0
    await store.set_opted_out(hidden, True)
    await store.db.commit()


async def test_the_store_counts_votes_per_engine_version_and_day(tmp_path):
    store = await Store.open(tmp_path / "bot.db")
    try:
        await seed(store)
        rows = await store.approval(time.time() - 30 * 86400)
    finally:
        await store.close()
    assert rows == [(engine, version, TODAY, up, down)
                    for (engine, version), (up, down) in sorted(SEEDED.items())]


@pytest.mark.parametrize(("up", "down"), [(3, 1), (1, 2), (4, 0), (0, 5), (37, 12)])
def test_wilson_matches_the_interval_solved_independently(up, down):
    low, high = stats_module.wilson(up, up + down)
    expected = wilson_by_quadratic(up, up + down)
    assert low == pytest.approx(expected[0], abs=1e-12)
    assert high == pytest.approx(expected[1], abs=1e-12)
    assert stats_module.wilson(3, 4) == pytest.approx((0.3006, 0.9544), abs=1e-4)  # in tables


def expected_lines(days: int = 30) -> list[str]:
    lines = [t("en", "stats_header", days=days)]
    for (engine, version), (up, down) in sorted(SEEDED.items()):
        low, high = wilson_by_quadratic(up, up + down)
        lines.append(t("en", "stats_line", label=f"{engine} {version}", votes=up + down,
                       approval=f"{100 * up / (up + down):.0f}", low=f"{100 * low:.0f}",
                       high=f"{100 * high:.0f}"))
    return lines


async def test_stats_as_text_with_the_promotion_marked_and_bad_days_refused(serve):
    async with serve() as router:
        assert (await say(router, "/stats")).final == t("en", "stats_none", days=30)
        await seed(router.store)
        await router.store.add_adapter(Adapter("ft2", "tiny", "/nowhere", "candidate", {}))
        await router.store.promote("ft2")
        answer = (await say(router, "/stats")).final
        assert answer.split("\n") == [*expected_lines(), t("en", "stats_promoted", adapter="ft2",
                                                              day=TODAY)]
        await router.store.rollback()
        answer = (await say(router, "/stats")).final
        assert answer.split("\n")[-2:] == [t("en", "stats_promoted", adapter="ft2", day=TODAY),
                                           t("en", "stats_rolled_back", adapter="ft2", day=TODAY)]
        assert "ngram-1: 4 votes, 75% 👍, 95% interval 30–95%" in answer
        assert (await say(router, "/stats 7")).final.startswith(t("en", "stats_header", days=7))
        usage = t("en", "stats_usage", max=3650, default=30)
        for bad in ("abc", "0", "-3", "1.5", "99999", "²"):
            assert (await say(router, f"/stats {bad}")).final == usage


@pytest.fixture
def plotted(monkeypatch) -> list[tuple]:
    """Every chart drawn: (series, promotions), recorded on the way to the real plotting.
    matplotlib is imported first: its first import takes seconds on a loaded machine, which
    would count against the fake servers' patience for the reply."""
    pytest.importorskip("matplotlib.pyplot")
    calls: list[tuple] = []
    real = stats_module.plot_approval

    def recording(series, promoted, path, title):
        calls.append(([(s.label, s.days, s.up, s.down, s.approval()) for s in series], promoted))
        real(series, promoted, path, title)

    monkeypatch.setattr(stats_module, "plot_approval", recording)
    return calls


def expected_series() -> list[tuple]:
    return [(f"{engine} {version}", [TODAY], [up], [down],
             [(up / (up + down), *wilson_by_quadratic(up, up + down))])
            for (engine, version), (up, down) in sorted(SEEDED.items())]


def assert_series(plotted: list[tuple]) -> None:
    [(series, promoted)] = plotted
    assert [s[:4] for s in series] == [s[:4] for s in expected_series()]
    for got, want in zip(series, expected_series(), strict=True):
        [(share, low, high)] = got[4]  # one day each
        assert (share, low, high) == pytest.approx(want[4][0], abs=1e-12)
    assert promoted == [(TODAY, "ft2", "promoted"), (TODAY, "ft1", "promoted"),
                        (TODAY, "ft1", "rolled_back")]


async def seed_with_promotion(router, platform: str) -> None:
    """ft2 promoted, then ft1 promoted and rolled back: ft2 serves again."""
    await seed(router.store, platform)
    for adapter in ("ft2", "ft1"):
        await router.store.add_adapter(Adapter(adapter, "tiny", "/nowhere", "candidate", {}))
        await router.store.promote(adapter)
    assert await router.store.rollback() == ("ft1", "ft2")


async def test_telegram_gets_the_chart_as_a_png_and_the_table_as_text(tmp_path, plotted):
    alice = telegram_bot.ALICE
    async with running_bot("telegram", tmp_path) as bot:
        await seed_with_promotion(bot.router, "telegram")
        sent = await bot.reply_to(bot.fake.private(alice), alice, "/stats", count=2)
        [document] = [m for m in sent if "document" in m]
        assert document["caption"] == t("en", "stats_chart", days=30)
        assert any(m.get("text", "").startswith(t("en", "stats_header", days=30)) for m in sent)
        [(_, name, content)] = bot.fake.uploads
        assert name == "approval.png" and content.startswith(b"\x89PNG")
    assert_series(plotted)
    assert not any((tmp_path / "data" / "stats").iterdir())  # the temp folder is gone


async def test_discord_gets_the_chart_as_an_attachment(tmp_path, plotted):
    async with running_bot("discord", tmp_path) as bot:
        await seed_with_promotion(bot.router, "discord")
        answer = await bot.command("stats", days="30")
        assert answer.text.startswith(t("en", "stats_header", days=30))
        [upload] = [m for m in bot.fake.messages.values() if m.files]
        assert upload.text == t("en", "stats_chart", days=30)
        assert [f["filename"] for f in upload.files] == ["approval.png"]
        assert upload.files[0]["size"] > 1000
    assert_series(plotted)


def test_a_chart_of_one_day_keeps_to_a_few_days_of_axis(tmp_path, caplog):
    """Left to autoscaling, one day of votes widened the axis to four years: a tick a day, 1607
    of them, each drawing warned about and slow enough to miss a platform's patience."""
    pytest.importorskip("matplotlib")
    series = stats_module.collect([("ngram", "ngram-1", TODAY, 3, 1)])
    stats_module.plot_approval(series, [(TODAY, "ft1", "promoted")], tmp_path / "a.png", "t")
    assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")
    assert not [r for r in caplog.records if "MAXTICKS" in r.getMessage()]


def test_the_first_days_markers_and_versions_do_not_print_over_each_other(tmp_path):
    """ft1 promoted, rolled back and ft2 promoted on one day: one label with a line each; three
    versions voted on one day: three x positions around that day."""
    marked = [(TODAY, "ft1", "promoted"), (TODAY, "ft1", "rolled_back"),
              (TODAY, "ft2", "promoted")]
    assert stats_module.day_labels(marked) == [
        (TODAY, "ft1\nft1 rolled back\nft2", ["promoted", "rolled_back"])]
    offsets = [stats_module.dodge(i, 3) for i in range(3)]
    assert offsets == sorted(set(offsets)) and max(map(abs, offsets)) < 0.5
    assert stats_module.dodge(0, 1) == 0.0
    pytest.importorskip("matplotlib")
    rows = [("transformer", v, TODAY, 1, 1) for v in ("base", "ft1", "ft2")]
    stats_module.plot_approval(stats_module.collect(rows), marked, tmp_path / "a.png", "t")
    assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")
