"""The bot's Prometheus metrics, declared once; /metrics of bot/server.py exposes them.

Labels take few values (engine, outcome, platform), never a chat or user id: every label
value is a time series of its own, and ids would also put people in the metrics.
"""

from __future__ import annotations

import functools
from typing import TypeVar, cast

from prometheus_client import Counter, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

disable_created_metrics()  # the *_created series only double what a scraper already sees

# Replies take from milliseconds (ELIZA) to minutes (a transformer on a CPU).
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

MESSAGES = Counter("eliza2llm_messages_received", "Messages and commands handed to the router",
                   ["platform"])
RATE_LIMITED = Counter("eliza2llm_rate_limited",
                       "Messages and votes refused by [policy] rate_per_minute")
REPLIES = Counter("eliza2llm_replies", "Engine replies by outcome (ok, failed, cut_off at "
                  "shutdown, unavailable engine)", ["engine", "outcome"])
REPLY_SECONDS = Histogram("eliza2llm_reply_seconds", "From asking the engine to its whole reply",
                          ["engine"], buckets=LATENCY_BUCKETS)
FIRST_TOKEN_SECONDS = Histogram("eliza2llm_first_token_seconds",
                                "From asking the engine to its first piece of text", ["engine"],
                                buckets=LATENCY_BUCKETS)
LET_GO = Counter("eliza2llm_backlog_let_go", "Messages let go unanswered: their chat's backlog "
                 "was full ([bot] max_backlog)", ["platform"])
VOTES = Counter("eliza2llm_votes_stored", "Votes stored (a changed vote counts again)",
                ["value"])
PLATFORM_WAITS = Counter("eliza2llm_platform_rate_limit_waits", "Requests a platform refused "
                         "for a while (429, flood control) and the bot waited out", ["platform"])
FINETUNE_JOBS = Counter("eliza2llm_finetune_jobs", "Fine-tuning jobs by how they ended "
                        "(promoted, rejected, too_few, failed, stopped)", ["outcome"])


@functools.cache
def _child(metric: MetricWrapperBase, *labels: str) -> MetricWrapperBase:
    return metric.labels(*labels)


def child(metric: M, *labels: str) -> M:
    """`metric.labels(*labels)`, looked up once: labels() validates and locks on every call,
    a cost on each message's path (bench/profile_router.txt); label values are few."""
    return cast(M, _child(metric, *labels))


def replied(engine: str, failed: bool, cut_off: bool, seconds: float) -> None:
    """Count one engine reply and its latency."""
    outcome = "cut_off" if cut_off else "failed" if failed else "ok"
    child(REPLIES, engine, outcome).inc()
    child(REPLY_SECONDS, engine).observe(seconds)
