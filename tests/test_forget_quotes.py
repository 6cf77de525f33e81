"""/forget reaches what quotes a person, not only what answers them (issue 25.5): in a group,
any engine's reply to someone else that holds their words (the transformer and remote engines
answer from a history that holds everyone's) is blanked; and an opted-out person's words,
which ELIZA remembers in memory only, go too."""

from __future__ import annotations

import json

from tests.harness import say

GROUP = "g1"
ALICE = {"user": "alice", "platform": "console", "is_group": True, "is_admin": True}


async def test_forget_in_a_group_blanks_every_reply_that_quotes_the_person(serve):
    async with serve() as router:
        store = router.store
        chat = await store.chat("console", GROUP)
        alice, bob = await store.user("console", "alice"), await store.user("console", "bob")
        early = await store.add_message(chat, bob, "bot", "Hello zqx419904!",  # before she wrote
                                        reply_to=None, engine="remote")
        await store.add_message(chat, alice, "user", "my locker code is zqx419904")
        await store.add_message(chat, bob, "user", "what did she say?")
        quoting = await store.add_message(chat, bob, "bot", "Her code: zqx419904.",
                                          engine="transformer", engine_version="base")
        in_frame = await store.add_message(chat, bob, "bot", "She said my locker code is",
                                           engine="remote")  # a run of her words
        ordinary = await store.add_message(chat, bob, "bot", "What do you think she said?",
                                           engine="transformer")
        answer = (await say(router, "/forget", chat=GROUP, **ALICE)).final
        assert "1" in answer  # one message of hers deleted
        texts = dict(await store._all("SELECT id, text FROM messages WHERE role = 'bot'"))
    assert texts[quoting] is None and texts[in_frame] is None
    assert texts[ordinary] == "What do you think she said?"  # words she shares with everyone
    assert texts[early] == "Hello zqx419904!"  # made before she wrote: not from her words


async def test_forget_drops_an_opted_out_persons_eliza_memory(serve):
    async with serve() as router:
        await say(router, "/engine eliza", chat="dm", **ALICE)
        await say(router, "/optout", chat="dm", **ALICE)
        await say(router, "My sister zqxwombat lives in Bonn.", chat="dm", **ALICE)
        chat = await router.store.chat("console", "dm")
        remembered = router.services.unstored_state[chat.id, "eliza"]
        assert "zqxwombat" in json.dumps(remembered).lower()  # in memory, not in the database
        await say(router, "/forget", chat="dm", **ALICE)
        assert (chat.id, "eliza") not in router.services.unstored_state
        for line in ("Well.", "Hm.", "Perhaps.", "So.", "Yes."):
            assert "zqxwombat" not in (await say(router, line, chat="dm", **ALICE)).final.lower()
