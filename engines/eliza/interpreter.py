"""One message in, one ELIZA answer out, with the chat's state and an explanation for /why.

The order of things follows the 1966 program: the counter steps; the message is scanned for
the clause and its keywords; with no keyword and the counter at 4 the oldest memory is the
answer; otherwise keywords are taken off the keystack, top first, and their rules tried. A rule
may answer, link to another keyword (=KEY), rebuild the words and link (PRE), or pass to the
next keyword (NEWKEY). When the keystack runs out, the NONE rules answer; when a keyword's
rules cannot decompose the words at all, one of the program's built-in answers does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engines.eliza.keystack import scan
from engines.eliza.memory import remember
from engines.eliza.pattern import decompose, reassemble
from engines.eliza.script import Entry, Script
from engines.eliza.state import COUNTER_CYCLE, ChatState
from engines.eliza.tokens import tokenize

# Keywords tried for one message at most: a script whose links form a cycle must not hang.
MAX_STEPS = 100


@dataclass(slots=True)
class Answer:
    text: str
    trace: dict[str, Any] = field(default_factory=dict)


def respond(script: Script, state: ChatState, text: str) -> Answer:
    """ELIZA's answer to `text`; `state` (this chat's) is updated in place."""
    counter = state.step_counter()
    words, keystack = scan(tokenize(text), script)
    context = {"keystack": list(keystack), "counter": counter}
    if not keystack and counter == COUNTER_CYCLE and state.memories:
        recalled = state.memories.pop(0)
        trace = {"keyword": "", "decomposition": "", "reassembly": recalled, "memory": True,
                 "why": "no keyword, and the counter stood at 4: the oldest memory answers"}
        return Answer(recalled, trace | context)
    answer = _Turn(script, state, words).run(keystack)
    answer.trace |= context
    return answer


@dataclass(slots=True)
class _Outcome:
    kind: str  # "answer", "link", "newkey" or "nomatch"
    value: str = ""


class _Turn:
    """The keystack loop for one message."""

    __slots__ = ("decomposition", "reassembly", "remembered", "script", "state", "tried", "words")

    def __init__(self, script: Script, state: ChatState, words: list[str]) -> None:
        self.script = script
        self.state = state
        self.words = words
        self.tried: list[str] = []  # keywords taken off the keystack, links included
        self.decomposition = ""
        self.reassembly = ""
        self.remembered = ""

    def run(self, keystack: list[str]) -> Answer:
        while keystack and len(self.tried) < MAX_STEPS:
            keyword = keystack.pop(0)
            self.tried.append(keyword)
            if keyword == self.script.memory.keyword:
                self._remember()
            outcome = self._apply(self.script.entries[keyword])
            if outcome.kind == "answer":
                return self._answer(outcome.value)
            if outcome.kind == "nomatch":
                return self._nomatch()
            if outcome.kind == "link":
                keystack.insert(0, outcome.value)
        return self._none()

    def _apply(self, entry: Entry) -> _Outcome:
        for rule in entry.rules:
            parts = decompose(rule.pattern, self.words, self.script.tags)
            if parts is not None:
                break
        else:
            return _Outcome("link", entry.link) if entry.link else _Outcome("nomatch")
        reassembly = rule.reassemblies[self.state.take_reassembly(rule.id, len(rule.reassemblies))]
        self.decomposition, self.reassembly = rule.source, reassembly.source
        if reassembly.kind == "text":
            words = reassemble(reassembly.pieces, parts)
            return _Outcome("answer", " ".join(words)) if words else _Outcome("nomatch")
        if reassembly.kind == "pre":
            self.words = reassemble(reassembly.pieces, parts)
        return _Outcome(reassembly.kind if reassembly.kind == "newkey" else "link",
                        reassembly.target)

    def _remember(self) -> None:
        form = remember(self.script.memory, self.words, self.script.tags)
        if form is not None:
            self.state.memories.append(form)
            self.remembered = form

    def _none(self) -> Answer:
        self.tried.append("NONE")
        outcome = self._apply(self.script.none)
        return self._answer(outcome.value) if outcome.kind == "answer" else self._nomatch()

    def _nomatch(self) -> Answer:
        nomatch = self.script.nomatch
        text = nomatch[(self.state.counter - 1) % len(nomatch)]
        self.decomposition, self.reassembly = "", f"(no decomposition matched: {text})"
        return self._answer(text)

    def _answer(self, text: str) -> Answer:
        trace: dict[str, Any] = {"keyword": self.tried[0] if self.tried else ""}
        if len(self.tried) > 1:
            trace["path"] = " -> ".join(self.tried)
        trace |= {"decomposition": self.decomposition, "reassembly": self.reassembly,
                  "memory": False}
        if self.remembered:
            trace["remembered"] = self.remembered
        return Answer(text, trace)
