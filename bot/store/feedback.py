"""Votes on replies (one per person per reply), and what the fine-tuning export reads of them."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from bot.store.connection import Connection
from bot.store.people import Chat, User


@dataclass(frozen=True)
class VotedReply:
    """A reply with the message it answers and its votes, for the fine-tuning export."""

    id: int
    prompt_id: int
    lang: str
    prompt: str
    text: str
    engine_version: str | None
    score: int  # the sum of the votes (+1 / -1, one per person)
    votes: int
    trace: dict[str, Any] = field(default_factory=dict)  # the reply's marks (engines.base)


class Feedback(Connection):
    async def vote(self, message_id: int, user: User, value: int, source: str) -> None:
        """One vote per user per reply: a new vote replaces the old one."""
        await self._exec(
            "INSERT INTO feedback VALUES (?, ?, ?, ?, ?) ON CONFLICT (message_id, user_id)"
            " DO UPDATE SET value = excluded.value, source = excluded.source,"
            " created_at = excluded.created_at",
            (message_id, user.id, value, source, time.time()),
        )

    async def unvote(self, message_id: int, user: User, source: str | None = None) -> bool:
        """Remove the user's vote (only if it came from `source`, when given)."""
        sql = "DELETE FROM feedback WHERE message_id = ? AND user_id = ?"
        args: tuple = (message_id, user.id)
        if source is not None:
            sql, args = sql + " AND source = ?", (*args, source)
        return (await self._exec(sql, args)).rowcount > 0

    async def chat_stats(self, chat: Chat) -> dict[str, int]:
        row = await self._one(
            "SELECT COUNT(*), COALESCE(SUM(role = 'bot'), 0),"
            " (SELECT COUNT(*) FROM feedback f JOIN messages r ON r.id = f.message_id"
            "  WHERE r.chat_id = ?1 AND f.value = 1),"
            " (SELECT COUNT(*) FROM feedback f JOIN messages r ON r.id = f.message_id"
            "  WHERE r.chat_id = ?1 AND f.value = -1)"
            " FROM messages WHERE chat_id = ?1",
            (chat.id,),
        )
        return dict(zip(("messages", "replies", "up", "down"), row, strict=True))

    async def votes_since(self, since: float) -> int:
        """Votes cast (or changed) after a unix time: the scheduler's trigger."""
        row = await self._one("SELECT COUNT(*) FROM feedback WHERE created_at > ?", (since,))
        return row[0]

    async def approval(self, since: float) -> list[tuple[str, str, str, int, int]]:
        """(engine, version, day "YYYY-MM-DD" in UTC, 👍 votes, 👎 votes) of the votes cast
        (or changed) after a unix time, per day of the vote, for /stats. Votes of people who
        opted out are left out, as the fine-tuning export leaves them out."""
        return await self._all(
            "SELECT r.engine, COALESCE(r.engine_version, ''), date(f.created_at, 'unixepoch'),"
            " SUM(f.value = 1), SUM(f.value = -1) FROM feedback f"
            " JOIN messages r ON r.id = f.message_id JOIN users fu ON fu.id = f.user_id"
            " WHERE r.role = 'bot' AND r.engine IS NOT NULL AND f.created_at > ?"
            " AND fu.opted_out = 0 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            (since,),
        )

    async def live_votes(self, engines: tuple[str, ...], version: str,
                         replies_since: float = 0.0, votes_before: float = math.inf,
                         first: int = -1) -> list[tuple[int, int]]:
        """(👍 votes, all votes) of each person who voted on these engines' replies made as
        `version` (an adapter id, or "base"): an adapter's approval in the chats, person by
        person, for the live guard and /adapters. Only replies made after `replies_since` and
        votes cast before `votes_before`, the `first` of them in the order they were cast (-1:
        all). Votes of people who opted out are left out, as everywhere."""
        return await self._all(
            "SELECT SUM(value = 1), COUNT(*) FROM (SELECT f.user_id, f.value FROM feedback f"
            " JOIN messages r ON r.id = f.message_id JOIN users fu ON fu.id = f.user_id"
            f" WHERE r.role = 'bot' AND r.engine IN ({', '.join('?' * len(engines))})"
            " AND r.engine_version = ? AND r.created_at >= ? AND f.created_at < ?"
            " AND fu.opted_out = 0 ORDER BY f.created_at, f.rowid LIMIT ?)"
            " GROUP BY user_id ORDER BY user_id",
            (*engines, version, replies_since, min(votes_before, 1e300), first),
        )

    async def voted_replies(self, *engines: str) -> list[VotedReply]:
        """These engines' replies with the message they answer and their summed votes, oldest
        first. Only text that is still stored (forgotten users' is gone), never from or about
        people who opted out: their questions, and their votes, are left out."""
        rows = await self._all(
            "SELECT r.id, q.id, COALESCE(c.lang, ''), q.text, r.text, r.engine_version,"
            " SUM(f.value), COUNT(*), r.trace FROM messages r"
            " JOIN messages q ON q.id = r.reply_to JOIN users qu ON qu.id = q.user_id"
            " JOIN chats c ON c.id = r.chat_id"
            " JOIN feedback f ON f.message_id = r.id JOIN users fu ON fu.id = f.user_id"
            f" WHERE r.role = 'bot' AND r.engine IN ({', '.join('?' * len(engines))})"
            " AND r.text IS NOT NULL"
            " AND q.text IS NOT NULL AND qu.opted_out = 0 AND fu.opted_out = 0"
            " GROUP BY r.id ORDER BY r.id",
            engines,
        )
        return [VotedReply(r, q, lang, prompt, text, version, score, votes,
                           json.loads(trace or "{}"))
                for r, q, lang, prompt, text, version, score, votes, trace in rows]
