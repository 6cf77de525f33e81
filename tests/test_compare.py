"""/compare: every engine answers the same text, each answer its own labelled message, stored as
that engine's reply; /good after a compare applies to its last answer."""

from __future__ import annotations

from bot.events import Incoming, Reaction
from engines.registry import Engines
from tests.harness import HEAVY_WAIT, ChatSink, db_rows, heavy, run_console, write_config


@heavy  # the n-gram model built cold from the shipped corpus
def test_console_compare_labels_each_engine_and_good_rates_the_last_answer(tmp_path):
    config = write_config(tmp_path / "config.toml",
                          f"[bot]\nreply_timeout = {HEAVY_WAIT // 2}.0\n", engines=False)
    done = run_console(["console", "--config", str(config), "--data-dir", str(tmp_path / "d")],
                       ["/compare Men are all alike.", "/good", "/why"], cwd=tmp_path,
                       timeout=HEAVY_WAIT)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    eliza = [line for line in out if line.startswith("eliza doctor.en")]
    ngram = [line for line in out if line.startswith("ngram kn3: ")]
    assert len(eliza) == 1 and eliza[0].endswith(": IN WHAT WAY")
    assert len(ngram) == 1 and len(ngram[0]) > len("ngram kn3: ")
    assert out.index(eliza[0]) < out.index(ngram[0])  # in the engines' order
    assert any(line.startswith("/compare: 2 engines answered") for line in out)
    assert any(line.startswith("transformer: ") for line in out)  # not here: listed, with why
    stored = db_rows(tmp_path / "d", "SELECT m.engine, r.platform_msg_id FROM messages m"
                   " JOIN message_refs r ON r.message_id = m.id WHERE m.role = 'bot'"
                   " ORDER BY m.id")
    assert stored == [("eliza", "r1.1"), ("ngram", "r1.2")]  # each as the message it was sent as
    votes = db_rows(tmp_path / "d", "SELECT m.engine, f.value FROM feedback f"
                    " JOIN messages m ON m.id = f.message_id")
    assert votes == [("ngram", 1)]  # /good: the last answer
    assert "My last reply came from ngram kn3." in done.stdout  # /why: the same one


async def test_failing_engines_are_listed_and_a_reaction_votes_for_its_engine(serve,
                                                                             monkeypatch):
    names = ["echo", "broken", "hanging", "unloadable", "eliza"]
    monkeypatch.setattr(Engines, "names", property(lambda self: names))
    async with serve("reply_timeout = 0.5\n") as router:
        sink = ChatSink()
        incoming = Incoming(platform="test", chat_id="c1", user_id="u1", text="/compare hello")
        await router.handle(incoming, sink)
        assert len(sink.chat) == 3
        assert sink.chat[0] == "echo echo-1: echo: hello"  # sent as "m1"
        assert sink.chat[1].startswith("eliza doctor.en@")
        summary = sink.chat[2].splitlines()
        assert summary[0].startswith("/compare: 2 engines answered")
        assert sorted(line.split(":")[0] for line in summary[1:]) == ["broken", "hanging",
                                                                     "unloadable"]
        react = Reaction("test", "c1", "u2", "m1", "👍")
        assert await router.react(react)
        async with router.store.db.execute(
            "SELECT m.engine, m.engine_version, f.value FROM feedback f"
            " JOIN messages m ON m.id = f.message_id") as cursor:
            assert list(await cursor.fetchall()) == [("echo", "echo-1", 1)]


async def test_telegram_and_discord_sinks_hand_out_sinks_for_more_messages():
    from types import SimpleNamespace

    from bot.frontends.discord import DiscordSink
    from bot.frontends.telegram_reply import TelegramReply

    sent: list[tuple[int, str, object]] = []

    class Bot:
        async def send_message(self, chat_id, text, reply_parameters=None, **_):
            sent.append((chat_id, text, reply_parameters))
            return SimpleNamespace(message_id=len(sent))

    first = TelegramReply(Bot(), 7, reply_to=3, interval=0.0, buttons=False)
    other = first.another()
    assert await first.finish("summary") == ["1"]
    assert await other.finish("eliza: IN WHAT WAY") == ["2"]
    assert [(c, t) for c, t, _ in sent] == [(7, "summary"), (7, "eliza: IN WHAT WAY")]
    assert sent[1][2] is None  # only the command's own message answers the person's

    posted: list[str] = []

    async def send(text: str) -> str:
        posted.append(text)
        return f"d{len(posted)}"

    async def edit(message_id: str, text: str) -> None:
        raise AssertionError("a new message is sent, not an old one edited")

    sink = DiscordSink(send, edit, limit=2000, interval=0.0)
    sink.channel = "channel"
    more = sink.another()
    assert more.channel == "channel"
    assert await more.finish("ngram kn3: hi") == ["d1"]
    assert await sink.finish("summary") == ["d2"] and posted == ["ngram kn3: hi", "summary"]
