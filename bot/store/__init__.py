"""The store: aiosqlite, and the only package that writes SQL.

One `Store` over one connection per process (WAL, so a fine-tuning job in another process can
share the file; see connection.py for the locking). Its methods come in sections, one module
each, every one a mixin over `Connection`:

- connection: opening the file, the PRAGMAs, migrating, and the read/write helpers;
- migrations: the schema, as ordered steps that run once each;
- people: chats and users, and their settings;
- messages: the conversation log, the history an engine sees;
- replies: a reply's reads in one trip and its writes in one transaction; engine state;
- feedback: votes on replies, and the voted replies the fine-tuning export reads;
- training: fine-tuning jobs and adapters;
- privacy: /mydata, /forget, the texts the bot may learn from, retention;
- inbox: deliveries kept before they are confirmed to the platform, until handled.
"""

from __future__ import annotations

from bot.store.feedback import Feedback, VotedReply
from bot.store.inbox import Inbox, Received
from bot.store.messages import Messages, Reply
from bot.store.migrations import MIGRATIONS, migration
from bot.store.people import Chat, People, User
from bot.store.privacy import Privacy
from bot.store.replies import Exchange, Recalled, Replies
from bot.store.training import Adapter, Training

__all__ = [
    "MIGRATIONS",
    "Adapter",
    "Chat",
    "Exchange",
    "Recalled",
    "Received",
    "Reply",
    "Store",
    "User",
    "VotedReply",
    "migration",
]


class Store(People, Messages, Replies, Feedback, Training, Privacy, Inbox):
    """Everything the bot and the fine-tuning jobs keep: open with `await Store.open(path)`."""
