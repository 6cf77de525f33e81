"""Held-out perplexity of the n-gram engine's shared model on the packaged corpora, with the
k-people rule against counting every chat message in full (the engine before issue 25).

    python -m bench.ngram_perplexity [--messages 2000] [--people 50]

Per language: the corpora split 90/10 as `python -m engines.ngram eval --lang` splits them;
the engine's Language learns the 90% (in full: the rule is for people's text), then
--messages chat messages (8 random words of bench/forget_spam's vocabulary, by --people people
in their own chats). Baseline, same process: the same messages counted in full, as before.
Both also without any chat message: the corpora alone must give the same model.
"""

from __future__ import annotations

import argparse
import random

from bench.forget_spam import WORDS
from engines.ngram.__main__ import corpus_split, perplexity
from engines.ngram.languages import Language


def held_out(lang: str, chat: list[tuple[str, str]], k_rule: bool) -> float:
    train, test = corpus_split(lang)
    language = Language(lang, 3, 7)
    language.learn(" ".join(s) for s in train)
    for text, person in chat:
        if k_rule:
            language.learn_message(text, person, f"chat-{person}")
        else:
            language.learn([text])
    model = language.estimate().forward
    logp, oov = model.score([language.corpus.vocab.encode(s) for s in test])
    return perplexity(logp, oov)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--people", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(0)
    chat = [(" ".join(rng.choices(WORDS, k=8)), f"p{rng.randrange(args.people)}")
            for _ in range(args.messages)]
    print("| lang | chat messages | before: all counted | now: k people | now / before |")
    print("|---|---:|---:|---:|---:|")
    for lang in ("en", "de"):
        for messages in ([], chat):
            before = held_out(lang, messages, k_rule=False)
            now = held_out(lang, messages, k_rule=True)
            print(f"| {lang} | {len(messages):,} | {before:.4f} | {now:.4f} | "
                  f"{now / before:.4f}x |")


if __name__ == "__main__":
    main()
