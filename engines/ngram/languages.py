"""One language's model: its corpus counts, what it learned from people (learned.py), the
shared models estimated from both, and its copy guard.

The corpus counts are made once (packaged corpora) and never change; people's text is learned
message by message into the k-anonymous counts and the chats' layers. The shared models are
estimated again from the corpus counts and the sequences k people wrote, off the event loop,
only when those changed, and swapped in whole, so a reply running in another thread always
sees one consistent model. A chat's models are the shared ones with the chat's layer over them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from engines.corpora import Found, split_sentences
from engines.ngram.contexts import ContextCheck
from engines.ngram.counts import NgramCounts
from engines.ngram.kneser_ney import estimate
from engines.ngram.layer import ChatGuard, ChatModel, with_layer
from engines.ngram.learned import Learned
from engines.ngram.model import LanguageModel
from engines.ngram.people import tables
from engines.ngram.rows import merge
from engines.ngram.tokens import tokenize_cased
from engines.ngram.training import Corpus
from engines.ngram.verbatim import CopyGuard
from engines.ngram.vocab import UNK, Vocab

MAX_LEARNED = 200_000  # sequences learned from people (without [engines.ngram] options)


@dataclass
class Models:
    forward: LanguageModel
    backward: LanguageModel
    guard: CopyGuard
    tokens: int  # training tokens behind them


@dataclass
class ChatModels:
    """The shared models with one chat's layer over them: what answers that chat."""

    forward: LanguageModel | ChatModel
    backward: LanguageModel | ChatModel
    guard: CopyGuard | ChatGuard


class Language:
    def __init__(self, lang: str, order: int, copy_span: int, k_people: int = 3,
                 max_learned: int = MAX_LEARNED) -> None:
        self.lang = lang
        self.corpus = Corpus(order)
        self.guard = CopyGuard(copy_span)
        self.learned = Learned(order, copy_span, k_people, max_learned)
        self._checks: tuple[ContextCheck, ...] | None = None
        self._word_cap: int | None = None  # the most words people's text may bring
        self.tokens = 0
        self.models: Models | None = None
        self.estimations = 0  # how often models were estimated from the counts
        # Which corpora its base counts came from, and which would add to them (for /engines).
        self.found = Found([], [])
        # How often each spelling was seen inside a sentence: replies write "Filme", "KI".
        self.spellings: Counter[str] = Counter()

    def learn(self, texts: Iterable[str]) -> int:
        """Count the sentences of corpus `texts` in full; returns how many tokens that added."""
        sentences = self._sentences(texts)
        added = self.corpus.add(sentences)
        self.guard.add(self.corpus.vocab.encode(s) for s in sentences)
        self.tokens += added
        return added

    def _sentences(self, texts: Iterable[str], spell: bool = True) -> list[list[str]]:
        cased = self._cased(texts)
        if spell:
            for sentence in cased:
                self.spellings.update(sentence[1:])  # the first word is capitalised anyway
        return [[token.lower() for token in s] for s in cased]

    def _cased(self, texts: Iterable[str]) -> list[list[str]]:
        return [words for text in texts for s in split_sentences(text, self.lang)
                if (words := tokenize_cased(s, self.lang))]

    def learn_message(self, text: str, person: str, chat: str) -> bool:
        """Learn one person's message in both scopes; True if the shared models must be
        estimated again (a sequence reached k people, or left the bound). New words join the
        vocabulary (ids are never taken back) up to as many as the bound on what is learned:
        past that a new word counts as <unk>, so the vocabulary is bounded too."""
        vocab = self.corpus.vocab
        if self._word_cap is None:
            self._word_cap = len(vocab) + self.learned.max_entries
        sentences = []
        for cased in self._cased([text]):
            ids = [vocab.ids.get(w.lower()) or self._new_word(w.lower()) for w in cased]
            # how a word is spelled, for the words held (a bounded vocabulary, bounded forms)
            self.spellings.update(w for w, i in zip(cased[1:], ids[1:], strict=True) if i)
            sentences.append(ids)
        self.learned.add(person, chat, sentences)
        return self._shared_changed()

    def _new_word(self, word: str) -> int:
        if len(self.corpus.vocab) >= (self._word_cap or 0):
            return UNK
        return self.corpus.vocab.add(word)

    def withdraw_message(self, text: str, person: str, chat: str) -> bool:
        """Take one learned message back from both scopes; True as for learn_message."""
        sentences = [self.corpus.vocab.encode(s) for s in self._sentences([text], spell=False)]
        self.learned.subtract(person, chat, sentences)
        return self._shared_changed()

    def prune(self) -> tuple[bool, bool]:
        """One step towards the bound: (done, whether the shared models must be estimated
        again)."""
        return self.learned.prune(), self._shared_changed()

    def _shared_changed(self) -> bool:
        changed, self.learned.people.changed = self.learned.people.changed, False
        return changed

    def spelling(self, word: str) -> str:
        """The commonest of `word`, `Word` and `WORD` mid-sentence (lower-case on a tie)."""
        forms = (word, word.capitalize(), word.upper())
        return max(forms, key=lambda form: self.spellings.get(form, 0))

    @property
    def estimated(self) -> Models:
        """The models as last estimated (the engine estimates each language as it starts)."""
        if self.models is None:
            raise RuntimeError(f"the {self.lang} n-gram models are not estimated yet")
        return self.models

    def estimate(self) -> Models:
        """The shared models: the corpus counts in full plus the sequences k people wrote,
        each counted once per writer. Runs beside learning: it reads a copy of what is
        admitted, and the corpus counts, which do not change."""
        admitted = dict(self.learned.people.admitted)  # one C-level copy, atomic
        size = len(self.corpus.vocab)  # after the copy: every admitted id is below it
        order = self.corpus.order
        if self._checks is None:  # the corpus counts are complete by the first estimation
            self._checks = tuple(ContextCheck({k: c.table(k) for k in c.tables}, order)
                                 for c in (self.corpus.forward, self.corpus.backward))
        forward, backward = NgramCounts(order), NgramCounts(order)
        for mine, check, theirs in zip((forward, backward), self._checks,
                                       tables(admitted, order), strict=True):
            held = check.keep(theirs)
            mine.tables = {k: merge(check.corpus[k], held[k]) for k in check.corpus}
        self.estimations += 1
        self.models = Models(estimate(forward, size), estimate(backward, size),
                             CopyGuard(self.guard.span, self.guard.hashes), self.tokens)
        return self.models

    def for_chat(self, chat: str) -> ChatModels:
        """The models that answer `chat`: the shared ones, with the chat's layer if it has
        one."""
        shared = self.estimated
        layer = self.learned.layers.get(chat) if chat else None
        if layer is None:
            return ChatModels(shared.forward, shared.backward, shared.guard)
        return ChatModels(*with_layer((shared.forward, shared.backward), shared.guard, layer))

    # -- snapshot contents ------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"guard": self.guard.hashes}
        for direction, counts in (("fw", self.corpus.forward), ("bw", self.corpus.backward)):
            for k in counts.tables:
                rows, values = counts.table(k)
                out[f"{direction}{k}_rows"], out[f"{direction}{k}_counts"] = rows, values
        return out

    def header(self) -> dict:
        return {"words": self.corpus.vocab.words, "tokens": self.tokens,
                "spellings": dict(self.spellings)}

    @classmethod
    def restore(cls, lang: str, order: int, copy_span: int, header: dict,
                arrays: dict[str, np.ndarray], **learning: int) -> Language:
        """Rebuild from a snapshot's parts (KeyError or ValueError if they do not fit)."""
        language = cls(lang, order, copy_span, **learning)
        language.corpus.vocab = Vocab(header["words"])
        language.tokens = int(header["tokens"])
        language.spellings = Counter(header["spellings"])
        language.guard = CopyGuard(copy_span, arrays["guard"])
        for direction, counts in (("fw", language.corpus.forward),
                                  ("bw", language.corpus.backward)):
            _restore_counts(counts, arrays, direction)
        return language


def _restore_counts(counts: NgramCounts, arrays: dict[str, np.ndarray], direction: str) -> None:
    for k in counts.tables:
        rows, values = arrays[f"{direction}{k}_rows"], arrays[f"{direction}{k}_counts"]
        if rows.ndim != 2 or rows.shape[1] != k or len(rows) != len(values):
            raise ValueError(f"snapshot table {direction}{k} has the wrong shape")
        counts.tables[k] = rows, values
