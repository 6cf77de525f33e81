"""Through the real Router and Store: what people who opted out say never reaches the counts."""

from __future__ import annotations

from tests.harness import say

NGRAM = "[engines.ngram]\ncorpora = false\ntime_budget = 0.05\n"


def known_words(engine) -> set[str]:
    """The words the engine's models hold: the shared ones, or any chat's layer (the
    vocabulary itself only grows: ids never change)."""
    found = set()
    for language in engine.languages.values():
        layers = language.learned.layers.values()
        for i, word in enumerate(language.corpus.vocab.words):
            if language.models.forward.knows(i) or any(i in layer.words for layer in layers):
                found.add(word)
    return found


async def test_opted_out_text_never_reaches_the_counts_now_or_after_a_restart(serve):
    async with serve(NGRAM) as router:
        assert "ngram" in (await say(router, "/engine ngram", user="admin", is_admin=True)).final
        engine = await router.engines.get("ngram")
        await say(router, "/optout", user="hidden")
        assert (await say(router, "zebras whisper secrets", user="hidden")).final.strip()
        await say(router, "lions roar loudly", user="open")
        await engine.settle()
        assert {"lions", "roar"} <= known_words(engine)
        assert not {"zebras", "whisper", "secrets"} & known_words(engine)
        await say(router, "/optin", user="hidden")
        await say(router, "giraffes hum", user="hidden")
        await engine.settle()
        assert "giraffes" in known_words(engine)
    async with serve(NGRAM) as router:
        engine = await router.engines.get("ngram")
        words = known_words(engine)
        assert {"lions", "giraffes"} <= words and "zebras" not in words


async def test_next_and_why_show_the_ngram_engines_work(serve):
    async with serve(NGRAM) as router:
        await say(router, "/engine ngram", user="admin", is_admin=True)
        for _ in range(2):
            await say(router, "robots like very shiny gears", user="open")
        await (await router.engines.get("ngram")).settle()
        assert "shiny" in (await say(router, "/next robots like very", user="open")).final
        await say(router, "tell me about robots", user="open")
        why = (await say(router, "/why", user="open")).final
        assert "keywords" in why and "robots" in why and "candidates" in why


async def test_forget_and_optout_take_the_words_back_out_of_the_counts(serve):
    async with serve(NGRAM) as router:
        await say(router, "/engine ngram", user="admin", is_admin=True)
        engine = await router.engines.get("ngram")
        await say(router, "quokkas juggle pinecones", user="leaver")
        await say(router, "wombats dig burrows", user="stayer")
        await say(router, "kiwis count stars", user="quitter")
        await engine.settle()
        assert {"quokkas", "wombats", "kiwis"} <= known_words(engine)
        assert "Deleted" in (await say(router, "/forget", user="leaver")).final
        await say(router, "/optout", user="quitter")
        words = known_words(engine)
        assert "wombats" in words and not {"quokkas", "pinecones", "kiwis"} & words
        assert "pinecones" not in (await say(router, "/next quokkas juggle", user="stayer")).final
