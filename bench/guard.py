"""How many votes the live guard needs to catch a drop in approval, and how often it rolls back
an adapter that is as good as the one it replaced (a mistake), over many simulated chats.

    python -m bench.guard [--runs 2000] [--watch 480] [--seed 0]

Each run: the replaced adapter has earned BASELINE_VOTES votes at BASELINE_LIKED approval;
the new one's votes then come one by one, each a 👍 with its own approval (the baseline's less
the drop), for up to --watch votes. Two guards judge the same votes:

- the guard (bot/guard.py): checkpoints at guard_min_votes, 2x, 4x ... votes, spending half,
  a quarter ... of guard_alpha at each, with its own functions (checkpoint, spent, drop_p_value);
- the baseline: the same z-test at the whole guard_alpha after every vote from guard_min_votes
  on, the obvious design, whose mistakes grow with every look.

The last line is how many times fewer mistaken rollbacks the guard makes than the baseline.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from bot.config import FinetuneOptions
from bot.guard import checkpoint, drop_p_value, spent

BASELINE_LIKED = 0.70
BASELINE_VOTES = 100
DROPS = (0.0, 0.05, 0.10, 0.20, 0.30)  # approval points lost; 0: the difference is noise
GOAL = 2.0


def guard_rolls_back(votes: list[bool], up_old: int, min_votes: int, alpha: float) -> int:
    """The vote at which the guard rolls back (0: never): it judges each checkpoint once."""
    passed = 0
    while (judged := min_votes << passed) <= len(votes):
        assert checkpoint(judged, min_votes) == passed
        if drop_p_value(sum(votes[:judged]), judged, up_old, BASELINE_VOTES) < spent(passed,
                                                                                      alpha):
            return judged
        passed += 1
    return 0


def baseline_rolls_back(votes: list[bool], up_old: int, min_votes: int, alpha: float) -> int:
    """The vote at which a test after every vote at the whole alpha rolls back (0: never)."""
    up = sum(votes[:min_votes - 1])
    for n in range(min_votes, len(votes) + 1):
        up += votes[n - 1]
        if drop_p_value(up, n, up_old, BASELINE_VOTES) < alpha:
            return n
    return 0


def simulate(drop: float, runs: int, watch: int, rng: random.Random,
             options: FinetuneOptions) -> dict[str, list[int]]:
    caught: dict[str, list[int]] = {"guard": [], "baseline": []}
    for _ in range(runs):
        up_old = sum(rng.random() < BASELINE_LIKED for _ in range(BASELINE_VOTES))
        votes = [rng.random() < BASELINE_LIKED - drop for _ in range(watch)]
        args = (votes, up_old, options.guard_min_votes, options.guard_alpha)
        caught["guard"].append(guard_rolls_back(*args))
        caught["baseline"].append(baseline_rolls_back(*args))
    return caught


def summary(at: list[int]) -> str:
    hits = sorted(n for n in at if n)
    if not hits:
        return "0.0% | – | –"
    p90 = hits[min(len(hits) - 1, int(0.9 * len(hits)))]
    return f"{100 * (len(hits) / len(at)):.1f}% | {statistics.median(hits):.0f} | {p90}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--watch", type=int, default=480, help="votes on the new adapter")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    options = FinetuneOptions()  # the defaults of config.toml
    rng = random.Random(args.seed)
    started = time.perf_counter()
    print(f"baseline approval {BASELINE_LIKED:.0%} on {BASELINE_VOTES} votes; guard_min_votes "
          f"{options.guard_min_votes}, guard_alpha {options.guard_alpha}; {args.runs} runs of "
          f"{args.watch} votes each\n")
    print("| drop | guard: rolled back | median votes | 90th pct | "
          "baseline: rolled back | median votes | 90th pct |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    mistakes = {}
    for drop in DROPS:
        caught = simulate(drop, args.runs, args.watch, rng, options)
        print(f"| {100 * drop:.0f} points | {summary(caught['guard'])} | "
              f"{summary(caught['baseline'])} |")
        if drop == 0:
            mistakes = {name: sum(map(bool, at)) / args.runs for name, at in caught.items()}
    print(f"\nmistaken rollbacks (drop 0): guard {100 * mistakes['guard']:.1f}%, baseline "
          f"{100 * mistakes['baseline']:.1f}%; {time.perf_counter() - started:.1f} s")
    ratio = mistakes["baseline"] / max(mistakes["guard"], 1 / args.runs)
    print(f"guard: {ratio:.2f}x (goal {GOAL:.0f}x)")


if __name__ == "__main__":
    main()
