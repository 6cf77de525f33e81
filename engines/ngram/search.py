"""Reply search in the MegaHAL/cobe tradition: seed a sentence with one of the message's
keywords, grow it rightwards with the forward model and leftwards with the backward model,
and keep the candidate that tells the most about the keywords, as many tries as time allows.

A candidate's score is the surprisal (-log2 p) of its keywords under both models: an
unexpected keyword in a fluent sentence carries information. Long candidates are damped as
MegaHAL does (divided by sqrt(n - 1) past 8 tokens and by n past 16), so rambling does not
win by piling up keywords. A message without keywords gets the most fluent candidate (fewest
bits per token). Pure surprisal favours keywords in odd places ("Wetter denk benutzen
vergebens"), so FLUENCY_WEIGHT times the candidate's bits per token is taken off: among
sentences about the keywords, the fluent ones win. Candidates that echo the message, quote
training text at length, have fewer than MIN_WORDS words or are malformed (stray symbols,
unbalanced quotes) are thrown away. Where the language has rules for whole phrases
(engines/ngram/phrases.py), a fragment is the answer only when no whole phrase was found, and
then the one nearest to a whole phrase (the lowest tier).
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engines.ngram.layer import Guard, Predictor
from engines.ngram.vocab import BOS, EOS

MAX_CANDIDATES = 20_000  # a bound for tiny models, where one try takes microseconds
ECHO_SPAN = 4  # a reply never shares this many tokens in a row with the message
# Bits of keyword information worth one bit per token of fluency: 20 German and 8 English
# replies judged by hand went from mostly fragments at 0 to mostly whole phrases at 5-10.
FLUENCY_WEIGHT = 8.0
MIN_WORDS = 3  # "Die Kinder." is a phrase, but no answer


@dataclass
class Search:
    forward: Predictor
    backward: Predictor
    guard: Guard
    budget_s: float
    max_tokens: int
    rng: random.Random = field(default_factory=random.Random)
    words: Sequence[str] = ()  # the vocabulary, to check punctuation; empty: no such check
    # How far a candidate is from a whole phrase of its language, and why: (0, "") for a whole
    # phrase, higher tiers for worse ones; None: no such check
    fragment: Callable[[list[int]], tuple[int, str]] | None = None
    # Every other candidate grows only by what the corpus has after its last words (no backing
    # off to shorter contexts while there is a continuation): fewer pieces joined that never
    # stood together, which whole-phrase rules reward. False: all candidates sample exactly.
    seen_half: bool = False


@dataclass
class Found:
    """The outcome of one search, with its own time accounting (for /why and for tests)."""

    tokens: list[int] | None
    score: float
    keywords: list[int]
    tried: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    stopped: str = ""  # "budget" or "max_candidates"
    elapsed_s: float = 0.0
    last_start_s: float = 0.0  # when the last candidate was begun, from the search's start
    tier: int = 0  # of `tokens`: 0 a whole phrase, more: the best of what was found
    # the best candidate so far of each tier past 0 (tokens, score)
    fallbacks: dict[int, tuple[list[int], float]] = field(default_factory=dict)


def search(s: Search, message: Sequence[int], keywords: Sequence[int]) -> Found:
    found = Found(None, -math.inf, list(keywords))
    started = time.monotonic()
    while True:
        now = time.monotonic() - started
        if now >= s.budget_s:
            found.stopped = "budget"
            break
        if found.tried >= MAX_CANDIDATES:
            found.stopped = "max_candidates"
            break
        found.last_start_s = now
        found.tried += 1
        seen = s.seen_half and found.tried % 2 == 0
        _consider(s, found, _grow(s, keywords, seen), message)
    found.elapsed_s = time.monotonic() - started
    if found.tokens is None and found.fallbacks:  # a small corpus may have no whole phrase
        found.tier = min(found.fallbacks)
        found.tokens, found.score = found.fallbacks[found.tier]
    return found


def _consider(s: Search, found: Found, candidate: list[int], message: Sequence[int]) -> None:
    why = _rejection(s, candidate, message)
    if why:
        found.rejected[why] = found.rejected.get(why, 0) + 1
        return
    tier, partial = s.fragment(candidate) if s.fragment is not None else (0, "")
    if tier:  # kept in case no whole phrase turns up; not scored once a better tier has one
        found.rejected[partial] = found.rejected.get(partial, 0) + 1
        if found.tokens is not None or any(t < tier for t in found.fallbacks):
            return
    per_token = _bits(s.forward, candidate, None) / (len(candidate) + 1)
    if found.keywords:
        keyword_bits = surprisal(s.forward, s.backward, candidate, set(found.keywords))
        score = keyword_bits - FLUENCY_WEIGHT * per_token
    else:  # nothing to be about: the most fluent candidate
        score = -per_token
    if tier:
        if score > found.fallbacks.get(tier, (None, -math.inf))[1]:
            found.fallbacks[tier] = candidate, score
    elif score > found.score:
        found.tokens, found.score = candidate, score


def _rejection(s: Search, candidate: list[int], message: Sequence[int]) -> str:
    if len(candidate) < 2:
        return "too_short"
    if len(candidate) >= s.max_tokens:
        return "too_long"
    if echoes(candidate, message):
        return "echo"
    if s.words and sum(s.words[i][:1].isalnum() for i in candidate) < MIN_WORDS:
        return "too_short"
    if s.words and not well_formed([s.words[i] for i in candidate]):
        return "malformed"
    if s.guard.copies(candidate):
        return "copy"
    return ""


def _grow(s: Search, keywords: Sequence[int], seen: bool = False) -> list[int]:
    """A sentence around one keyword (or from the start, without keywords)."""
    if not keywords:
        return _extend(s.forward, [BOS], s, seen)[1:]
    sentence = _extend(s.forward, [s.rng.choice(keywords)], s, seen)
    return _extend(s.backward, sentence[::-1], s, seen)[::-1]


def _extend(model: Predictor, tokens: list[int], s: Search, seen: bool) -> list[int]:
    while len(tokens) < s.max_tokens:
        word = model.sample(tokens, s.rng, seen)
        if word == EOS:
            break
        tokens.append(word)
    return tokens


def surprisal(
    forward: Predictor, backward: Predictor, tokens: list[int], keywords: set[int]
) -> float:
    """Bits of information the candidate's keywords carry, damped for length (MegaHAL)."""
    bits = _bits(forward, tokens, keywords) + _bits(backward, tokens[::-1], keywords)
    n = len(tokens)
    if n > 8:
        bits /= math.sqrt(n - 1)
    if n > 16:
        bits /= n
    return bits


def _bits(model: Predictor, tokens: list[int], only: set[int] | None) -> float:
    """-log2 p of the tokens in `only` (all tokens and </s> when None), <s> first."""
    context = [BOS]
    bits = 0.0
    for token in tokens if only is not None else [*tokens, EOS]:
        if only is None or token in only:
            bits -= math.log2(max(model.prob_of(context, token), 1e-300))
        context.append(token)
    return bits


def echoes(candidate: Sequence[int], message: Sequence[int]) -> bool:
    """The candidate is the message, or repeats ECHO_SPAN of its tokens in a row."""
    if list(candidate) == list(message):
        return True
    spans = {tuple(message[i : i + ECHO_SPAN]) for i in range(len(message) - ECHO_SPAN + 1)}
    return any(
        tuple(candidate[i : i + ECHO_SPAN]) in spans
        for i in range(len(candidate) - ECHO_SPAN + 1)
    )


MARKS = frozenset(".,!?;:'\"()[]-…’")  # punctuation a reply may use; not "<", "*", "@"...


def well_formed(tokens: Sequence[str]) -> bool:
    """Words and ordinary punctuation only, beginning with a word or an opening quote or
    bracket; quotes and brackets balanced; no word twice in a row."""
    if not tokens or not (tokens[0][:1].isalnum() or tokens[0] in "\"'(["):
        return False
    if any(not (t[:1].isalnum() or t in MARKS) for t in tokens):
        return False
    if any(a == b and a[:1].isalnum() for a, b in itertools.pairwise(tokens)):
        return False
    depth = 0
    for token in tokens:
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(token, 0)
        if depth < 0:
            return False
    return depth == 0 and tokens.count('"') % 2 == 0
