"""The router with real engines from tests/engines.py and a real store in a tmp folder."""

from __future__ import annotations

import asyncio
import json

from bot.events import Reaction
from tests.harness import RecordingSink, msg, rows, say, votes_on


async def test_reply_streams_and_is_stored_with_engine_and_version(serve):
    async with serve() as router:
        sink = await say(router, "hello big world")
        assert sink.final == "echo: hello big world"
        assert sink.updates[-1] == sink.final and len(sink.updates) == 4
        stored = await rows(router, "SELECT role, text, engine, engine_version FROM messages")
        assert stored == [("user", "hello big world", None, None),
                          ("bot", "echo: hello big world", "echo", "echo-1")]


async def test_engine_state_is_kept_per_chat_and_reset_empties_it(serve):
    async with serve() as router:
        for _ in range(3):
            await say(router, "a", chat="c1")
        await say(router, "b", chat="c2")
        assert (await router.store.last_reply(await router.store.chat("test", "c1"))).trace[
            "turn"] == 3
        assert (await router.store.last_reply(await router.store.chat("test", "c2"))).trace[
            "turn"] == 1
        await say(router, "/reset", chat="c1")
        await say(router, "again", chat="c1")
        last = await router.store.last_reply(await router.store.chat("test", "c1"))
        assert last.trace == {"turn": 1, "history": 0}


async def test_history_is_the_recent_turns_of_this_chat_only(serve):
    async with serve('history_turns = 3\n') as router:
        for word in ("one", "two", "three"):
            await say(router, word)
        await say(router, "elsewhere", chat="c2")
        await say(router, "four")
        chat = await router.store.chat("test", "c1")
        turns = await router.store.history(chat, 3)
        assert [t.text for t in turns] == ["echo: three", "four", "echo: four"]
        assert (await router.store.last_reply(chat)).trace["history"] == 3


async def test_one_chat_answers_in_order_while_other_chats_go_on(serve):
    async with serve('[engines.echo]\ndelay = 0.05\n') as router:
        slow = [asyncio.create_task(say(router, f"m{i} x x x", chat="busy")) for i in range(3)]
        await asyncio.sleep(0.01)
        quick = await say(router, "hi", chat="other")
        assert quick.final == "echo: hi"
        assert not slow[-1].done()  # the busy chat is still thinking (0.6 s of replies queued)
        await asyncio.gather(*slow)
        texts = await rows(router, "SELECT m.text FROM messages m JOIN chats c"
                           " ON c.id = m.chat_id WHERE c.platform_chat_id = 'busy' ORDER BY m.id")
        assert [t for (t,) in texts] == [x for i in range(3)
                                         for x in (f"m{i} x x x", f"echo: m{i} x x x")]


async def test_an_engine_that_raises_gets_an_apology_and_the_bot_goes_on(serve, caplog):
    async with serve() as router:
        await say(router, "/engine broken")
        sink = await say(router, "boom")
        assert sink.updates == ["half a thought"]
        assert sink.final.startswith("Sorry")
        assert "the engine broke" in caplog.text
        last = await router.store.last_reply(await router.store.chat("test", "c1"))
        assert last.engine == "broken" and "the engine broke" in last.trace["error"]
        await say(router, "/engine echo")
        assert (await say(router, "still here")).final == "echo: still here"


async def test_an_engine_that_hangs_times_out_with_an_apology(serve):
    async with serve('reply_timeout = 0.2\n') as router:
        await say(router, "/engine hanging")
        assert (await say(router, "anyone?")).final.startswith("Sorry")


async def test_an_engine_that_cannot_start_is_reported_not_fatal(serve):
    async with serve('admins = ["test:boss"]\n') as router:
        sink = await say(router, "/engine unloadable")
        assert "unavailable: details are for the bot's admins" in sink.final
        listing = (await say(router, "/engines")).final
        assert "unloadable: unavailable (details are for the bot's admins)" in listing
        assert "weights not found" not in listing  # an error's text is for admins only
        assert "echo: ready (echo-1)" in listing
        admin_view = (await say(router, "/engines", user="boss")).final
        assert "unloadable: unavailable (weights not found" in admin_view
        assert (await say(router, "fine")).final == "echo: fine"  # the chat kept its engine


async def test_engines_tells_not_installed_from_available_and_asks_a_remote_server(
    serve, monkeypatch, unused_tcp_port
):
    """Without the ml extra the transformer is "not installed", with the command that installs
    it (for admins); the remote engine, its server down, is unavailable with why, not
    "loads on first use"."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else find_spec(name, *a))
    body = ('admins = ["test:boss"]\n[engines.remote]\n'
            f'base_url = "http://127.0.0.1:{unused_tcp_port}/v1"\n')
    async with serve(body) as router:
        listing = (await say(router, "/engines", user="boss")).final
        [transformer] = [line for line in listing.splitlines() if "transformer:" in line]
        assert transformer.startswith("• transformer: not installed (needs the ml extra (torch")
        assert "pip install" in transformer
        [remote] = [line for line in listing.splitlines() if "remote:" in line]
        assert remote.startswith("• remote: unavailable (") and "loads on first use" not in remote
        sink = await say(router, "/engine transformer", user="boss")
        assert "needs the ml extra" in sink.final


async def test_adapters_names_the_accuracy_once_and_a_rejected_adapter_promoted_by_hand(serve):
    from bot.store import Adapter

    judged = "held-out preference accuracy {:.2f} {}"
    async with serve('admins = ["test:boss"]\n') as router:
        adapters = router.services.adapters
        for name, accuracy, promote, why in (
            ("ft1", 0.8, True, "(active: 0.50)"),
            ("ft2", 0.4, False, "is not surely above 0.60 (95% lower bound 0.31)"),
        ):
            await adapters.register(Adapter(name, "tiny", f"/nowhere/{name}", "candidate" if promote
                                          else "rejected", {"evaluation": {
                                              "promote": promote, "new": {"accuracy": accuracy},
                                              "reason": judged.format(accuracy, why)}}))
        await adapters.promote("ft1", "a job")
        await adapters.promote("ft2", "a shell")  # by hand: `python -m finetune promote ft2`
        listing = (await say(router, "/adapters", user="boss")).final.splitlines()
        assert listing[1:] == [
            "• ft2: active (promoted by hand: the job's gate rejected it), held-out accuracy "
            "0.40 is not surely above 0.60 (95% lower bound 0.31) · no live votes yet",
            "• ft1: retired, held-out accuracy 0.80 (active: 0.50) · no live votes yet",
        ], listing
        await say(router, "/rollback", user="boss")
        [ft2] = [x for x in (await say(router, "/adapters", user="boss")).final.splitlines()
                 if x.startswith("• ft2")]
        assert ft2.startswith("• ft2: retired (rolled back), held-out accuracy 0.40 is not ")


async def test_reactions_become_votes_and_removing_one_removes_the_vote(serve):
    async with serve() as router:
        sink = await say(router, "rate me")
        [(reply_id,)] = await rows(router, "SELECT id FROM messages WHERE role = 'bot'")
        platform_id = f"sent-{id(sink)}"

        def react(emoji: str, added: bool = True, user: str = "u2") -> Reaction:
            return Reaction("test", "c1", user, platform_id, emoji, added)

        assert await router.react(react("👍"))
        assert await router.react(react("❤"))  # variation selector or not, it counts as up
        assert await router.react(react("👎", user="u3"))
        assert not await router.react(react("🤔"))  # not a vote
        assert not await router.react(Reaction("test", "c1", "u2", "m-unknown", "👍"))
        assert await votes_on(router.store, reply_id) == [("u2", 1), ("u3", -1)]
        assert await router.react(react("❤", added=False))
        assert not await router.react(react("👍", added=False))  # already replaced by ❤
        assert await votes_on(router.store, reply_id) == [("u3", -1)]


async def test_good_and_bad_rate_the_last_reply_once_per_user(serve):
    async with serve() as router:
        assert "no reply" in (await say(router, "/good")).final
        await say(router, "first")
        await say(router, "second")
        await say(router, "/good")
        await say(router, "/bad")
        await say(router, "/good", user="u2")
        votes = await rows(router, "SELECT m.text, f.value FROM feedback f"
                           " JOIN messages m ON m.id = f.message_id ORDER BY f.user_id")
        assert votes == [("echo: second", -1), ("echo: second", 1)]
        status = (await say(router, "/status")).final
        assert "Messages: 4 (my replies: 2)" in status and "👍 1  👎 1" in status


async def test_opted_out_text_is_answered_but_not_stored(serve):
    async with serve() as router:
        await say(router, "/optout")
        assert (await say(router, "my secret")).final == "echo: my secret"
        assert await rows(router, "SELECT COUNT(*) FROM messages WHERE text LIKE '%secret%'") == [
            (0,)]
        assert await router.store.stored_texts() == []
        await say(router, "/optin")
        await say(router, "public words")
        assert await router.store.stored_texts() == [("", "public words", "test:u1", "test:c1")]


async def test_forget_removes_the_users_text_and_votes_but_not_others(serve):
    async with serve() as router:
        await say(router, "mine alone", user="u1")
        await say(router, "/good", user="u1")
        await say(router, "from someone else", user="u2")
        assert "Deleted 1" in (await say(router, "/forget", user="u1")).final
        texts = [t for (t,) in await rows(router, "SELECT text FROM messages ORDER BY id")]
        assert texts == [None, "from someone else", "echo: from someone else"]
        assert await rows(router, "SELECT COUNT(*) FROM feedback") == [(0,)]
        data = json.loads((await say(router, "/mydata", user="u1")).final)
        assert data["messages"] == [{"id": 2, "chat": "c1", "role": "bot", "text": None,
                                     "time": data["messages"][0]["time"], "engine": "echo",
                                     "version": "echo-1", "trace": {}}]


async def test_commands_respect_scopes(serve):
    async with serve() as router:
        assert "admins only" in (await say(router, "/retrain")).final
        group = {"is_group": True, "chat": "g1"}
        assert "only its admins" in (await say(router, "/engine echo", **group)).final
        assert "now talks to echo" in (await say(router, "/engine echo", is_admin=True,
                                                    **group)).final
        assert "Unknown command /nope" in (await say(router, "/nope")).final


async def test_bot_admins_from_config_may_use_admin_commands(serve):
    async with serve('admins = ["test:boss"]\n') as router:
        assert "No adapters yet" in (await say(router, "/adapters", user="boss")).final


async def test_language_switch_changes_the_bots_words_and_the_engines_language(serve):
    async with serve() as router:
        assert (await say(router, "/lang fr")).final.startswith("Usage")
        assert "Deutsch" in (await say(router, "/lang de")).final
        assert "Unbekannter Befehl" in (await say(router, "/nope")).final
        assert "Hallo" in (await say(router, "/engine echo")).final  # the engine's German greeting


async def test_rate_limit_answers_clearly_and_keeps_nothing(serve):
    async with serve('[policy]\nrate_per_minute = 2\n') as router:
        await say(router, "a")
        await say(router, "b")
        assert "at most 2 messages a minute" in (await say(router, "c")).final
        assert (await say(router, "d", user="u2")).final == "echo: d"
        assert await rows(router, "SELECT COUNT(*) FROM messages WHERE text = 'c'") == [(0,)]


async def test_commands_count_toward_the_limit_and_slow_down_is_said_once(serve):
    async with serve('[policy]\nrate_per_minute = 2\n') as router:
        await say(router, "/forget")
        await say(router, "/optout")
        refused = [(await say(router, text)).final for text in ("/forget", "/help", "hi")]
        assert refused[0].startswith("Slow down") and refused[1:] == [None, None]
        assert (await say(router, "/help", user="u2")).final.startswith("I am eliza2llm")


async def test_mass_mentions_never_leave_the_bot(serve):
    async with serve() as router:
        final = (await say(router, "hello @everyone and @here")).final
        assert "@everyone" not in final and "@here" not in final
        assert "everyone" in final


async def test_next_and_why_ask_the_chat_engine(serve):
    async with serve() as router:
        assert "Most likely next words" in (await say(router, "/next KI für alle")).final
        assert "KI  33.3%" in (await say(router, "/next KI für alle")).final
        assert "no reply of mine" in (await say(router, "/why")).final
        await say(router, "explain me")
        why = (await say(router, "/why")).final
        assert why.startswith("My last reply came from echo echo-1.") and "turn: 1" in why
        await say(router, "/engine broken")
        assert "does not predict" in (await say(router, "/next a b")).final


async def test_nothing_an_opted_out_person_says_reaches_the_database_file(serve, tmp_path):
    """ELIZA keeps memories in its state and explains with the user's words: for someone who
    opted out, both stay in memory; the conversation still flows."""
    async with serve() as router:
        await say(router, "/engine eliza")
        await say(router, "/optout")
        first = (await say(router, "My boyfriend Bertram made me come here.")).final
        assert "BERTRAM" in first
        await say(router, "Men are all alike.")
        await say(router, "Men are all alike.")  # ELIZA cycles: its state moved on in memory
        replies = await rows(router, "SELECT COUNT(DISTINCT text), COUNT(*) FROM messages"
                             " WHERE role = 'bot'")
        assert replies == [(0, 3)]
        assert "keyword" not in (await say(router, "/why")).final.lower()
    for file in (tmp_path / "data").iterdir():
        if file.name.startswith("eliza2llm.sqlite3"):
            assert b"BERTRAM" not in file.read_bytes().upper(), file.name


async def test_store_text_off_keeps_only_metadata_and_votes(serve, tmp_path):
    async with serve("[privacy]\nstore_text = false\n") as router:
        await say(router, "/engine eliza")
        await say(router, "My mother Gertrude takes care of me.")
        await say(router, "/good")
        stored = await rows(router, "SELECT role, text, engine FROM messages ORDER BY id")
        assert stored == [("user", None, None), ("bot", None, "eliza")]
        assert await rows(router, "SELECT value FROM feedback") == [(1,)]
    for file in (tmp_path / "data").glob("eliza2llm.sqlite3*"):
        assert b"GERTRUDE" not in file.read_bytes().upper(), file.name


async def test_a_vote_cast_while_the_reply_still_streams_counts(serve):
    """Telegram shows the vote buttons with the first chunk; the reply is stored at the end."""
    async with serve("[engines.echo]\ndelay = 0.05\n") as router:
        sink = RecordingSink()
        reply = asyncio.create_task(router.handle(msg("one two three"), sink))
        while not sink.updates:
            await asyncio.sleep(0.01)
        assert await router.react(Reaction("test", "c1", "u2", f"sent-{id(sink)}", "👍"))
        await reply
        [(reply_id,)] = await rows(router, "SELECT id FROM messages WHERE role = 'bot'")
        assert await votes_on(router.store, reply_id) == [("u2", 1)]


async def test_mydata_is_not_posted_into_a_group(serve):
    async with serve() as router:
        await say(router, "my words", chat="g1", is_group=True)
        answer = (await say(router, "/mydata", chat="g1", is_group=True)).final
        assert "my words" not in answer and "private chat" in answer
        assert "my words" in (await say(router, "/mydata", chat="dm")).final


async def test_a_slow_platform_does_not_count_against_the_engines_timeout(serve):
    """A sink that waits out flood control (Telegram's 429) must not turn a reply into an
    apology: reply_timeout bounds the engine, not the platform."""

    class FloodedSink(RecordingSink):
        async def update(self, text: str) -> None:
            await asyncio.sleep(0.3)
            await super().update(text)

    async with serve("reply_timeout = 0.5\n") as router:
        sink = FloodedSink()
        await router.handle(msg("one two three four"), sink)
        assert sink.final == "echo: one two three four"


async def test_a_shutdown_cuts_the_engine_never_a_write_in_flight(serve):
    """The drain cancels a reply still streaming; an interim write on its way to the platform
    at that moment ends whole before the cut-off text is written. (Cut in half, a discord.py
    request left its route's rate-limit bucket empty for 30 s, and the cut-off edit never came:
    tests/test_discord_restarts.py, 2 runs in 7.)"""

    class SlowPlatform(RecordingSink):
        def __init__(self) -> None:
            super().__init__()
            self.writing = asyncio.Event()
            self.written: list[str] = []

        async def update(self, text: str) -> None:
            self.writing.set()
            await asyncio.sleep(0.5)  # the request in flight
            self.written.append(text)

        async def finish(self, text: str) -> list[str]:
            self.written.append(text)
            return await super().finish(text)

    async with serve("[engines.echo]\ndelay = 0.05\n") as router:
        sink = SlowPlatform()
        reply = asyncio.create_task(router.handle(msg("one two three four five"), sink))
        await sink.writing.wait()
        await router.drain(0.1)  # the first write is still in flight
        await reply
        assert sink.written[0] == "echo:"  # the write in flight ended whole
        assert sink.final is not None and sink.final.endswith("[cut off: the bot was stopping]")
        assert sink.written[-1] == sink.final and len(sink.written) == 2, sink.written
