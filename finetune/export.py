"""Votes -> datasets. From the store: the transformer's replies, the message each answers and
the sum of its votes (one per person); people who opted out or were forgotten never appear.

Rows written (JSON lines, text scrubbed of personal data first):
  sft.jsonl      {prompt, completion, lang, id}          liked replies (score > 0)
  kto.jsonl      {prompt, completion, label, lang, id}   every reply with a non-zero score
  dpo.jsonl      {prompt, chosen, rejected, lang, chosen_id, rejected_id}
                 a liked and a disliked reply to the same prompt
  heldout.jsonl  KTO-shaped rows kept out of training, to judge the new adapter
  job.json       {"active": the adapter active at export, "marked": counts(), "privacy": what
                 the k-people rule did}: what `train` continues from, so that it needs this
                 folder only
Text that fewer than [privacy] k_people people wrote never gets in: finetune/common.py.
Every row also has `cut`: the reply was cut short (its token cap, the bot stopping), so
training appends no end-of-turn token to it. Replies in the bot's own words (a fallback, an
apology, a "cut off" mark; engines.base.BOT_WORDS) are never exported. `counts()` says how many
replies were each (`cut`, `bot_words`).
Replies are held out by a hash of the prompt they answer: the held-out votes then judge the
adapter on prompts it never trained on (replies to one prompt are alike, and one prompt in both
parts would let chance agreement look like learning), and they stay held out in later jobs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.adapters import Adapters
from bot.files import private_dir, write_private
from bot.store import Store, VotedReply
from engines.base import BOT_WORDS, CUT
from finetune.common import PRIVATE, People, Rule, public_grams
from finetune.scrub import scrub
from finetune.settings import LEARNED_FROM, Settings

FILES = ("sft", "kto", "dpo", "heldout")
JOB = "job.json"


@dataclass
class Dataset:
    sft: list[dict[str, Any]] = field(default_factory=list)
    kto: list[dict[str, Any]] = field(default_factory=list)
    dpo: list[dict[str, Any]] = field(default_factory=list)
    heldout: list[dict[str, Any]] = field(default_factory=list)
    active: str = ""  # the adapter active when the votes were exported; "": the base model
    marked: dict[str, int] = field(default_factory=dict)  # {"cut": n, "bot_words": n}
    privacy: dict[str, Any] = field(default_factory=dict)  # common.Summary: dropped, scrubbed

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in FILES} | self.marked

    def message_ids(self) -> dict[str, list[int]]:
        """Which stored replies (and the messages they answer) each part was made of."""
        return {
            "trained": sorted({row["id"] for row in self.kto}),
            "prompts": sorted({row["prompt_id"] for row in self.kto}),
            "heldout": sorted({row["id"] for row in self.heldout}),
        }


def is_heldout(prompt: str, percent: int) -> bool:
    digest = hashlib.sha256(f"heldout:{prompt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def engines_own(replies: list[VotedReply]) -> tuple[list[VotedReply], dict[str, int]]:
    """The replies that are the engine's own words (the bot's are left out), and how many
    voted replies were cut short or were the bot's words."""
    voted = [r for r in replies if r.score != 0]  # votes that cancel out: no signal
    kept = [r for r in voted if BOT_WORDS not in r.trace]
    return kept, {"cut": sum(CUT in r.trace for r in voted), "bot_words": len(voted) - len(kept)}


def build(replies: list[VotedReply], heldout_percent: int, rule: Rule | None = None) -> Dataset:
    """The dataset; with `rule`, only what is common (the split is decided before, so that a
    prompt stays on its side however the rule changes it)."""
    data = Dataset()
    replies, data.marked = engines_own(replies)  # votes that cancel out are left out too
    for reply in replies:
        row = {"prompt": scrub(reply.prompt), "completion": scrub(reply.text),
               "label": reply.score > 0, "lang": reply.lang, "id": reply.id,
               "prompt_id": reply.prompt_id, "cut": CUT in reply.trace}
        held = is_heldout(f"{reply.lang}:{row['prompt']}", heldout_percent)
        common = rule.apply(row) if rule is not None else row
        if common is not None:
            (data.heldout if held else data.kto).append(common)
    if rule is not None:
        data.privacy = rule.summary.as_dict()
    data.sft = [_sft_row(row) for row in data.kto if row["label"]]
    data.dpo = pairs(data.kto)
    return data


def _sft_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in ("prompt", "completion", "lang", "id", "prompt_id", "cut")}


def pairs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (liked, disliked) pair of replies to the same prompt text in the same language."""
    by_prompt: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        # Prompts left alike by the k-people rule are alike only in what was hidden.
        own = row.get("prompt_id", 0) if PRIVATE in row["prompt"] else 0
        by_prompt[(row["lang"], row["prompt"], own)].append(row)
    out = []
    for (lang, prompt, _), group in by_prompt.items():
        liked = [r for r in group if r["label"]]
        disliked = [r for r in group if not r["label"]]
        for good, bad in itertools.product(liked, disliked):
            out.append({"prompt": prompt, "chosen": good["completion"],
                        "rejected": bad["completion"], "lang": lang,
                        "chosen_id": good["id"], "rejected_id": bad["id"],
                        "chosen_cut": good["cut"], "rejected_cut": bad["cut"]})
    return out


async def export(settings: Settings) -> Dataset:
    """Read the store, build the dataset and write it to settings.dataset_dir."""
    store = await Store.open(settings.db)
    try:
        replies = await store.voted_replies(*LEARNED_FROM)
        active = await Adapters(store, settings.adapters_dir).active()
        texts = await store.people_texts()
    finally:
        await store.close()
    # The corpora take a second or two to read: not for an export with no vote to count.
    public = public_grams() if any(reply.score for reply in replies) else frozenset()
    people = People(texts, settings.k_people, public)
    data = build(replies, settings.options.heldout_percent, Rule(people))
    data.active = active
    write(data, settings.dataset_dir)
    return data


def write(data: Dataset, folder: Path) -> None:
    """Private files (they hold people's words); the job deletes them when it ends, and
    /forget deletes the folder, so an export is never an old copy of forgotten text."""
    private_dir(folder)
    for name in FILES:
        lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in getattr(data, name)]
        write_private(folder / f"{name}.jsonl", "".join(lines))
    about = {"active": data.active, "marked": data.marked, "privacy": data.privacy}
    write_private(folder / JOB, json.dumps(about) + "\n")


def read(folder: Path) -> Dataset:
    parts = {}
    for name in FILES:
        path = folder / f"{name}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        parts[name] = [json.loads(line) for line in lines if line.strip()]
    job = folder / JOB
    about = json.loads(job.read_text(encoding="utf-8")) if job.exists() else {}
    return Dataset(**parts, active=about.get("active", ""), marked=about.get("marked", {}),
                   privacy=about.get("privacy", {}))
