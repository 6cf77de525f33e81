"""/stats [days]: how much people like each engine and adapter version over time.

Approval is the share of 👍 among the votes, with a 95% Wilson score interval (honest for few
votes and for shares near 0 or 1, where the normal approximation is not). The same numbers come
as text (screen readers, the console) and, where the platform uploads files, as a PNG chart.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from bot.commands import Argument, CommandCall, command
from bot.files import private_file

DEFAULT_DAYS = 30
MAX_DAYS = 3650
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval


def wilson(up: int, votes: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of the share of 👍 among `votes`; (0, 1) with no votes."""
    if votes == 0:
        return 0.0, 1.0
    share = up / votes
    centre = share + z * z / (2 * votes)
    spread = z * math.sqrt(share * (1 - share) / votes + z * z / (4 * votes * votes))
    scale = 1 + z * z / votes
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


@dataclass
class Series:
    """One engine version's votes per day (UTC), oldest first: what the chart draws."""

    engine: str
    version: str
    days: list[str] = field(default_factory=list)
    up: list[int] = field(default_factory=list)
    down: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.engine} {self.version}".strip()

    def approval(self) -> list[tuple[float, float, float]]:
        """(share of 👍, interval low, interval high) per day."""
        return [(u / (u + d), *wilson(u, u + d)) for u, d in zip(self.up, self.down, strict=True)]


def collect(rows: list[tuple[str, str, str, int, int]]) -> list[Series]:
    """The store's (engine, version, day, up, down) rows, ordered by them, as one Series per
    engine version."""
    found: dict[tuple[str, str], Series] = {}
    for engine, version, day, up, down in rows:
        series = found.setdefault((engine, version), Series(engine, version))
        series.days.append(day)
        series.up.append(up)
        series.down.append(down)
    return list(found.values())


PROMOTED, ROLLED_BACK = "promoted", "rolled_back"


def markers(adapters: list, since: float) -> list[tuple[str, str, str]]:
    """(day, adapter id, PROMOTED or ROLLED_BACK) of the promotions and rollbacks in the
    window, oldest first (an adapter's latest promotion, and its rollback after it)."""
    found = [(moment, adapter.id, kind) for adapter in adapters
             for moment, kind in ((adapter.promoted_at, PROMOTED),
                                  (adapter.rolled_back_at, ROLLED_BACK))
             if moment is not None and moment > since]
    return [(_day(moment), adapter, kind) for moment, adapter, kind in sorted(found)]


def _day(moment: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(moment))


def percent(value: float) -> str:
    return f"{100 * value:.0f}"


def table(ctx: CommandCall, days: int, series: list[Series],
          marked: list[tuple[str, str, str]]) -> str:
    """The numbers as text, one line per engine version over the whole window."""
    lines = [ctx.t("stats_header", days=days)]
    for one in series:
        up, votes = sum(one.up), sum(one.up) + sum(one.down)
        low, high = wilson(up, votes)
        lines.append(ctx.t("stats_line", label=one.label, votes=votes,
                           approval=percent(up / votes), low=percent(low), high=percent(high)))
    lines += [ctx.t("stats_promoted" if kind == PROMOTED else "stats_rolled_back",
                    adapter=adapter, day=day) for day, adapter, kind in marked]
    return "\n".join(lines)


def plot_approval(series: list[Series], marked: list[tuple[str, str, str]], path: Path,
                  title: str) -> None:
    """Approval per day with its interval (top) and the number of votes (bottom), one colour
    per engine version, a grey dashed line where an adapter was promoted and a red dotted one
    where it was rolled back, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the bot runs headless
    from matplotlib import pyplot as plt
    from matplotlib.dates import DateFormatter, DayLocator, date2num

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 5), dpi=100,
                                      gridspec_kw={"height_ratios": [3, 1]})
    for index, one in enumerate(series):
        # Versions voted on the same day side by side, not on top of each other.
        x = [date2num(date.fromisoformat(day)) + dodge(index, len(series)) for day in one.days]
        shares = one.approval()
        below = [s - low for s, low, _ in shares]
        above = [high - s for s, _, high in shares]
        top.errorbar(x, [s for s, _, _ in shares], yerr=[below, above], marker="o",
                     capsize=3, label=one.label)
        bottom.plot(x, [u + d for u, d in zip(one.up, one.down, strict=True)], marker=".")
    for day, label, kinds in day_labels(marked):
        for kind in kinds:
            colour, style = ("grey", "--") if kind == PROMOTED else ("red", ":")
            for ax in (top, bottom):
                ax.axvline(date.fromisoformat(day), color=colour, linestyle=style)
        top.annotate(label, (date.fromisoformat(day), 1.0), rotation=90, fontsize=7,
                     va="top", ha="right", color="red" if ROLLED_BACK in kinds else "grey")
    top.set_ylim(0, 1.05)
    top.set_ylabel("share of up votes, 95% interval")  # the default font has no emoji
    top.set_title(title)
    top.legend(fontsize=7)
    bottom.set_ylabel("votes")
    first, last = _span(series, marked)
    # Set, not left to autoscaling: a window of one day would widen to years (matplotlib's
    # way with a date range of zero width), and a tick a day over years is thousands of ticks.
    bottom.set_xlim(first - timedelta(days=1), last + timedelta(days=1))
    bottom.xaxis.set_major_locator(DayLocator(interval=max(1, (last - first).days // 8)))
    bottom.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))  # whole days, no hours
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(private_file(path), format="png")
    plt.close(fig)


def dodge(index: int, count: int, width: float = 0.5) -> float:
    """The x offset, in days, of the `index`th of `count` series drawn on one day."""
    return 0.0 if count < 2 else (index / (count - 1) - 0.5) * width


def day_labels(marked: list[tuple[str, str, str]]) -> list[tuple[str, str, list[str]]]:
    """One label per day for the promotions and rollbacks of that day, one line each (rotated:
    side by side), so that a day with several does not print them over each other:
    (day, label, kinds)."""
    days: dict[str, list[tuple[str, str]]] = {}
    for day, adapter, kind in marked:
        days.setdefault(day, []).append((adapter, kind))
    return [(day, "\n".join(a if k == PROMOTED else f"{a} rolled back" for a, k in events),
             list(dict.fromkeys(k for _, k in events))) for day, events in days.items()]


def _span(series: list[Series], marked: list[tuple[str, str, str]]) -> tuple[date, date]:
    """The first and last day with votes or a marker."""
    days = [date.fromisoformat(day) for one in series for day in one.days]
    days += [date.fromisoformat(day) for day, _, _ in marked]
    return min(days), max(days)


async def send_chart(ctx: CommandCall, days: int, series: list[Series],
                     marked: list[tuple[str, str, str]]) -> None:
    """The chart as a file, from a private folder under the data dir that goes right after;
    nothing where matplotlib (the `ml` extra) is missing: the text says it all."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    caption = ctx.t("stats_chart", days=days)
    async with ctx.upload("stats", "approval.png", caption) as path:
        await asyncio.to_thread(plot_approval, series, marked, path, caption)


def parse_days(text: str) -> int | None:
    """The window in days: DEFAULT_DAYS when empty; None for anything but 1..MAX_DAYS."""
    if not text:
        return DEFAULT_DAYS
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_DAYS:
        return None
    return int(text)


@command("stats", argument=Argument("days", required=False))
async def stats(ctx: CommandCall) -> str:
    days = parse_days(ctx.args.strip())
    if days is None:
        return ctx.t("stats_usage", max=MAX_DAYS, default=DEFAULT_DAYS)
    since = time.time() - days * 86400
    series = collect(await ctx.store.approval(since))
    if not series:
        return ctx.t("stats_none", days=days)
    marked = markers(await ctx.adapters.all(), since)
    if ctx.uploads:
        await send_chart(ctx, days, series, marked)
    return table(ctx, days, series, marked)
