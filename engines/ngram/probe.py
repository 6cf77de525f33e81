"""/probe for the n-gram model: how likely each whole continuation is after a context."""

from __future__ import annotations

import math

from engines.ngram.languages import Language
from engines.ngram.tokens import tokenize
from engines.ngram.vocab import BOS


def continuation_logprobs(
    language: Language, context: str, continuations: list[str], chat: str = ""
) -> list[float]:
    """ln p(continuation | <s> context) for each continuation under `chat`'s models: the sum
    of ln p(word | words before it) over its words, in the model's own tokenisation (an
    unknown word is <unk>)."""
    model = language.for_chat(chat).forward
    vocab = language.corpus.vocab
    start = [BOS, *vocab.encode(tokenize(context, language.lang))]
    results = []
    for text in continuations:
        history, total = list(start), 0.0
        for word in vocab.encode(tokenize(text, language.lang)):
            p = model.prob_of(history, word)
            total += math.log(p) if p > 0 else -math.inf
            history.append(word)
        results.append(total)
    return results
