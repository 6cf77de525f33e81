"""StreamingSink: throttled edits, the final text always written, long text split."""

from __future__ import annotations

from bot.frontends.stream import StreamingSink, split_text


class FakePlatform:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.now = 0.0

    async def send(self, text: str) -> str:
        self.calls.append(("send", text))
        return f"id{len(self.calls)}"

    async def edit(self, message_id: str, text: str) -> None:
        self.calls.append(("edit", message_id, text))

    def sink(self, limit: int = 100, interval: float = 1.0) -> StreamingSink:
        return StreamingSink(self.send, self.edit, limit=limit, interval=interval,
                             clock=lambda: self.now)


async def test_edits_at_most_once_per_interval_and_always_writes_the_final_text():
    platform = FakePlatform()
    sink = platform.sink()
    for step, text in enumerate(["a", "a b", "a b c", "a b c d"]):
        platform.now = step * 0.4  # updates every 0.4 s, interval 1 s
        await sink.update(text)
    ids = await sink.finish("a b c d e")
    assert platform.calls == [("send", "a"), ("edit", "id1", "a b c d"),
                              ("edit", "id1", "a b c d e")]
    assert ids == ["id1"]


async def test_no_edit_when_nothing_changed_and_blank_updates_are_skipped():
    platform = FakePlatform()
    sink = platform.sink(interval=0)
    await sink.update("   ")
    await sink.update("done")
    assert await sink.finish("done") == ["id1"]
    assert platform.calls == [("send", "done")]


async def test_long_replies_are_split_into_several_messages():
    platform = FakePlatform()
    sink = platform.sink(limit=10, interval=0)
    await sink.update("word " * 3)
    ids = await sink.finish("word " * 6)
    assert len(ids) == 3
    sent = [call[-1] for call in platform.calls]
    assert all(len(text) <= 10 for text in sent)


def test_split_prefers_line_breaks_and_spaces_and_loses_nothing_but_them():
    text = "alpha beta\ngamma delta epsilon " + "x" * 25
    parts = split_text(text, 12)
    assert all(len(p) <= 12 for p in parts)
    assert parts[0] == "alpha beta"
    assert "".join(parts).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace(
        "\n", "")
    assert split_text("", 5) == [""]


async def test_interim_writes_wait_for_the_platforms_budget_and_the_final_text_does_not():
    platform, spare = FakePlatform(), [False]
    sink = StreamingSink(platform.send, platform.edit, limit=100, interval=0,
                         clock=lambda: platform.now, may_update=lambda: spare[0])
    await sink.update("a")  # no budget to spare: nothing sent yet
    spare[0] = True
    await sink.update("a b")
    spare[0] = False
    await sink.update("a b c")
    await sink.finish("a b c d")
    assert platform.calls == [("send", "a b"), ("edit", "id1", "a b c d")]
