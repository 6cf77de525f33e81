"""What the engine does in its worker thread: answer a message, list the likeliest next words."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np

from engines.ngram.keywords import keywords, nouns_first
from engines.ngram.languages import Language
from engines.ngram.phrases import fragment, rules, verbs
from engines.ngram.search import Search, search
from engines.ngram.tokens import detokenize, is_word, tokenize
from engines.ngram.vocab import BOS, SPECIALS


def answer(
    language: Language, text: str, options: Any, rng: random.Random, chat: str = ""
) -> tuple[dict[str, Any], str | None]:
    """(trace for /why, reply text or None when no candidate survived the checks), as the
    models of `chat` answer it. A keyword is a word those models hold: a word that is merely
    in the vocabulary (someone elsewhere wrote it) behaves as one never seen."""
    models = language.for_chat(chat)
    vocab = language.corpus.vocab
    tokens = tokenize(text, language.lang)
    message = vocab.encode(tokens)
    chosen = [w for w in keywords(tokens, language.lang)
              if models.forward.knows(vocab.ids.get(w, 0))]
    if language.lang == "de":
        chosen = nouns_first(chosen, language.spelling)
    check = _fragment_check(language)
    setup = Search(models.forward, models.backward, models.guard, options.time_budget,
                   options.max_tokens, rng, vocab.words, check, seen_half=check is not None)
    found = search(setup, message, [vocab.ids[w] for w in chosen])
    trace = {
        "order": options.order, "lang": language.lang, "keywords": chosen,
        "candidates": found.tried, "rejected": found.rejected,
        "score": round(found.score, 3) if found.tokens else None,
        "phrase_tier": found.tier if found.tokens else None,
        "scored_by": "keyword surprisal (bits)" if chosen else "fluency (-bits per token)",
        # milliseconds; the last start rounded down, so it stays below the budget it kept to
        "budget_ms": round(options.time_budget * 1000, 3),
        "search_ms": round(found.elapsed_s * 1000),
        "last_start_ms": math.floor(found.last_start_s * 1000), "stopped": found.stopped,
    }
    if found.tokens is None:
        return trace, None
    words = [language.spelling(w) for w in vocab.decode(found.tokens)]
    return trace, detokenize(words, language.lang)


def _fragment_check(language: Language) -> Callable[[list[int]], tuple[int, str]] | None:
    """Tier 0: a whole phrase by the language's rules, built from n-grams of the corpus (bar
    a few); 1: whole by the rules, pieced together where the model backed off; 2: a fragment.
    Judged by the shared models (a chat's layer adds no verbs and no rules)."""
    found = rules(language.lang)
    if found is None:
        return None
    vocab = language.corpus.vocab
    models = language.estimated
    known = verbs(models.forward, models.backward, vocab, found, language.spelling)

    def check(ids: list[int]) -> tuple[int, str]:
        why = fragment([vocab.words[i] for i in ids], found, known, language.spelling)
        if why:
            return 2, why
        if models.forward.unseen(ids) > found.max_unseen:
            return 1, "unseen_ngrams"
        return 0, ""

    return check


def most_likely_next(language: Language, text: str, k: int,
                     chat: str = "") -> list[tuple[str, float]]:
    """The k likeliest words after `text` (a sentence start) in `chat`'s models: specials and
    punctuation left out, so "KI für alle ist sehr" lists words, not the comma."""
    model = language.for_chat(chat).forward
    vocab = language.corpus.vocab
    p = model.distribution([BOS, *vocab.encode(tokenize(text, language.lang))])
    p[: len(SPECIALS)] = 0.0
    # only words the models hold: one merely in the vocabulary (written elsewhere, by fewer
    # than k people) has the same probability as a word never seen, and is not listed either
    ranked = (i for i in np.argsort(-p, kind="stable")
              if model.knows(int(i)) and is_word(vocab.words[i]))
    best = list(itertools.islice(ranked, k))
    return [(language.spelling(vocab.words[i]), float(p[i])) for i in best if p[i] > 0]
