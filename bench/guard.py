"""How the live guard fares with people, not coin flips: honest voters who each have their own
taste and vote in bursts, a drop it should catch, and one person set on a rollback.

    python -m bench.guard [--runs 1000] [--watch 480] [--seed 0]

Each run: the replaced adapter has earned OLD_VOTES votes at BASELINE_LIKED approval; the new
one's votes then come in order for up to --watch votes. A voter's own approval is drawn from a
Beta distribution around the adapter's (TASTE_SPREAD: people differ), and each voter casts a
burst of votes (BURST on average: people react to several replies at once). Two guards judge
the same votes, at the same checkpoints and spending of guard_alpha (bot/guard.py's own
functions):

- before: every vote counted as if a different person cast it, and the replaced adapter needing
  guard_min_votes votes of its own (the guard as it was);
- after: each person weighed once (their share of 👍), guard_min_people people on the new
  adapter before any verdict, and the drop clear without the harshest of them (the guard as
  it is).

Scenarios: no drop (a rollback is a mistake; goal ≤ 5%), real drops (how many votes and people
until it is caught), one adversary's 30 👎 on an adapter the others like better than the last
(goal: 0 rollbacks) or as much (then it can do no more than honest noise does), and a replaced
adapter with only FEW_OLD_VOTES votes. The last line: how many times fewer mistaken rollbacks
the guard makes now than before.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.config import FinetuneOptions
from bot.guard import Tally, checkpoint, drop_p_value, rollback_p_value, spent

BASELINE_LIKED = 0.70
OLD_VOTES = 100
FEW_OLD_VOTES = 8
TASTE_SPREAD = 4.0  # Beta concentration: a voter's approval has sd ~0.2 around 0.7
BURST = 4.0  # votes a voter casts in one go, on average (geometric)
ADVERSARY_VOTES = 30
DROPS = (0.0, 0.10, 0.20, 0.30)  # approval points lost; 0: the difference is taste and noise

Vote = tuple[int, bool]  # (voter, 👍)


@dataclass
class Verdict:
    votes: int = 0  # at which vote it rolled back; 0: never
    people: int = 0


def voters(rng: random.Random, liked: float, votes: int, first: int = 0) -> list[Vote]:
    """`votes` votes from people with their own taste around `liked`, in bursts."""
    cast: list[Vote] = []
    voter = first
    while len(cast) < votes:
        own = rng.betavariate(liked * TASTE_SPREAD, (1 - liked) * TASTE_SPREAD)
        burst = 1 + int(rng.expovariate(1 / (BURST - 1)))
        cast += [(voter, rng.random() < own) for _ in range(burst)]
        voter += 1
    return cast[:votes]


def tally(votes: list[Vote]) -> Tally:
    people: dict[int, list[int]] = {}
    for voter, up in votes:
        person = people.setdefault(voter, [0, 0])
        person[0] += up
        person[1] += 1
    return Tally(tuple((up, n) for up, n in people.values()))


def one_each(votes: list[Vote]) -> list[float]:
    """Every vote as if a different person cast it: how the guard counted before."""
    return [float(up) for _, up in votes]


def judge(new: list[Vote], old: list[Vote], options: FinetuneOptions, by_people: bool) -> Verdict:
    """The first checkpoint at which the guard rolls back, judging each checkpoint once."""
    min_votes, alpha = options.guard_min_votes, options.guard_alpha
    old_tally = tally(old)
    passed = 0
    while (judged := min_votes << passed) <= len(new):
        assert checkpoint(judged, min_votes) == passed
        seen = tally(new[:judged])
        if by_people:
            enough = len(seen.people) >= options.guard_min_people and bool(old_tally.people)
            p_value = rollback_p_value(seen.approvals(), old_tally.approvals())
        else:
            enough = len(old) >= min_votes
            p_value = drop_p_value(one_each(new[:judged]), one_each(old))
        if enough and p_value < spent(passed, alpha):
            return Verdict(judged, len(seen.people))
        passed += 1
    return Verdict()


Scenario = Callable[[random.Random, int], tuple[list[Vote], list[Vote]]]


def honest(drop: float, old_votes: int = OLD_VOTES) -> Scenario:
    def votes(rng: random.Random, watch: int) -> tuple[list[Vote], list[Vote]]:
        old = voters(rng, BASELINE_LIKED, old_votes)
        return voters(rng, BASELINE_LIKED - drop, watch, first=10_000), old
    return votes


def adversary(gain: float) -> Scenario:
    """One person's 30 👎, all cast first (the worst case for the first checkpoints), among
    honest voters who like the adapter `gain` points more than the last."""
    def votes(rng: random.Random, watch: int) -> tuple[list[Vote], list[Vote]]:
        old = voters(rng, BASELINE_LIKED, OLD_VOTES)
        liked = voters(rng, BASELINE_LIKED + gain, watch - ADVERSARY_VOTES, first=10_000)
        return [(-1, False)] * ADVERSARY_VOTES + liked, old
    return votes


def summary(verdicts: list[Verdict]) -> str:
    hits = [v for v in verdicts if v.votes]
    if not hits:
        return "0.0% | – | –"
    votes = statistics.median(v.votes for v in hits)
    people = statistics.median(v.people for v in hits)
    return f"{100 * len(hits) / len(verdicts):.1f}% | {votes:.0f} | {people:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--watch", type=int, default=480, help="votes on the new adapter")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    options = FinetuneOptions()  # the defaults of config.toml
    rng = random.Random(args.seed)
    started = time.perf_counter()
    print(f"old approval {BASELINE_LIKED:.0%} on {OLD_VOTES} votes; voters' taste Beta spread "
          f"{TASTE_SPREAD}, bursts of {BURST:.0f} votes on average; guard_min_votes "
          f"{options.guard_min_votes}, guard_min_people {options.guard_min_people}, guard_alpha "
          f"{options.guard_alpha}; {args.runs} runs of {args.watch} votes each\n")
    print("| scenario | before: rolled back | median votes | median people | "
          "after: rolled back | median votes | median people |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    scenarios: dict[str, Scenario] = {f"drop {100 * d:.0f} points": honest(d) for d in DROPS}
    scenarios["one person's 30 👎, adapter liked 10 points more"] = adversary(0.10)
    scenarios["one person's 30 👎, adapter liked as much"] = adversary(0.0)
    scenarios[f"drop 30 points, old had {FEW_OLD_VOTES} votes"] = honest(0.30, FEW_OLD_VOTES)
    mistakes = {}
    for name, scenario in scenarios.items():
        verdicts: dict[bool, list[Verdict]] = {False: [], True: []}
        for _ in range(args.runs):
            new, old = scenario(rng, args.watch)
            for by_people in verdicts:
                verdicts[by_people].append(judge(new, old, options, by_people))
        print(f"| {name} | {summary(verdicts[False])} | {summary(verdicts[True])} |")
        if name == "drop 0 points":
            mistakes = {k: sum(bool(v.votes) for v in vs) / args.runs for k, vs in verdicts.items()}
    print(f"\nmistaken rollbacks (drop 0): before {100 * mistakes[False]:.1f}%, after "
          f"{100 * mistakes[True]:.1f}% (goal ≤ 5%); {time.perf_counter() - started:.1f} s")
    ratio = mistakes[False] / max(mistakes[True], 1 / args.runs)
    print(f"guard: {ratio:.2f}x fewer mistaken rollbacks than before")


if __name__ == "__main__":
    main()
