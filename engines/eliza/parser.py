"""Script files -> Script. The format is ours; the language is Weizenbaum's (CACM 9(1), 1966).

A script is lines of text. A line starting with "#" is a comment. Top-level lines:

    greeting   HOW DO YOU DO.  PLEASE TELL ME YOUR PROBLEM
    delimiters , . BUT                (words that end a clause)
    nomatch    PLEASE CONTINUE        (built-in answers of the 1966 program, one per line)
    word DONT = DON'T                 (a substitution only: not a keyword)
    word FATHER tags NOUN FAMILY      (a DLIST entry: tags a word; not a keyword)
    key MY = YOUR rank 2 [tags ...]   (a keyword: its rules follow, indented)
    memory MY                         (the MEMORY rule: 2^n forms, indented)
    none                              (the NONE rules, indented)

Under `key` and `none`, a decomposition pattern is indented 4 spaces and its reassemblies 8:

    key YOU'RE = I'M
        0 I'M 0
            PRE I ARE 3 => YOU        (PRE (I ARE 3) (=YOU))
        0 (*WANT NEED) 0 (/FAMILY) 1
            WHY DO YOU SAY 3          (a number inserts that part of the decomposition)
            => WHAT                   (=WHAT)
            NEWKEY
        => WHAT                       (=WHAT) after the rules, or as the only rule

Under `memory` each form is one line, `pattern = reassembly`, indented 4 spaces.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from engines.eliza.script import Element, Entry, MemoryRule, Piece, Reassembly, Rule, Script

_ELEMENT = re.compile(r"\([^()]*\)|[^\s()]+")
INDENT = 4


class ScriptError(ValueError):
    """A script that cannot be read; the message names the file and line."""


@dataclass
class _Line:
    number: int
    depth: int  # 0: top level, 1: indented 4 spaces, 2: indented 8
    text: str


@dataclass
class _Block:
    """A top-level line and the indented lines under it."""

    head: _Line
    body: list[_Line] = field(default_factory=list)


def load_script(path: Path) -> Script:
    return parse_script(path.read_text(encoding="utf-8"), path.name)


def parse_script(text: str, name: str) -> Script:
    try:
        return _Builder(name).build(_blocks(text), _version(name, text))
    except ScriptError as exc:
        raise ScriptError(f"{name}:{exc}") from None


def _version(name: str, text: str) -> str:
    return f"{name}@{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        line = _line(number, raw)
        if line.depth == 0:
            blocks.append(_Block(line))
        elif not blocks:
            raise ScriptError(f"{number}: an indented line before any top-level line")
        else:
            blocks[-1].body.append(line)
    return blocks


def _line(number: int, raw: str) -> _Line:
    if "\t" in raw:
        raise ScriptError(f"{number}: tabs are not allowed; indent with spaces")
    indent = len(raw) - len(raw.lstrip(" "))
    if indent % INDENT or indent > 2 * INDENT:
        raise ScriptError(f"{number}: indent by 0, {INDENT} or {2 * INDENT} spaces, not {indent}")
    return _Line(number, indent // INDENT, raw.strip())


class _Builder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.greeting = ""
        self.delimiters: frozenset[str] = frozenset()
        self.nomatch: list[str] = []
        self.entries: dict[str, Entry] = {}
        self.none: Entry | None = None
        self.memory = MemoryRule("", ())

    def build(self, blocks: list[_Block], version: str) -> Script:
        for block in blocks:
            self._block(block)
        none = self._check_complete()
        tags: dict[str, set[str]] = {}
        for entry in self.entries.values():
            for tag in entry.tags:
                tags.setdefault(tag, set()).add(entry.word)
        return Script(
            name=self.name, version=version, greeting=self.greeting,
            delimiters=self.delimiters, nomatch=tuple(self.nomatch), entries=self.entries,
            none=none, memory=self.memory,
            tags={tag: frozenset(words) for tag, words in tags.items()},
        )

    def _block(self, block: _Block) -> None:
        directive, _, rest = block.head.text.partition(" ")
        handler = {
            "greeting": self._greeting, "delimiters": self._delimiters,
            "nomatch": self._nomatch, "word": self._word, "key": self._key,
            "memory": self._memory, "none": self._none,
        }.get(directive)
        if handler is None:
            raise ScriptError(f"{block.head.number}: unknown directive {directive!r}")
        if directive not in ("key", "memory", "none") and block.body:
            raise ScriptError(f"{block.body[0].number}: {directive} takes no indented lines")
        handler(block, rest.strip())

    def _greeting(self, block: _Block, rest: str) -> None:
        self.greeting = rest

    def _delimiters(self, block: _Block, rest: str) -> None:
        self.delimiters = frozenset(rest.upper().split())

    def _nomatch(self, block: _Block, rest: str) -> None:
        self.nomatch.append(" ".join(rest.split()))

    def _word(self, block: _Block, rest: str) -> None:
        entry = _entry_head(block.head.number, rest)
        if entry.rank:
            raise ScriptError(f"{block.head.number}: a rank needs rules; use key, not word")
        self._add(block.head.number, entry)

    def _key(self, block: _Block, rest: str) -> None:
        head = _entry_head(block.head.number, rest)
        if head.word == "NONE":
            raise ScriptError(f"{block.head.number}: NONE is written as a `none` block")
        rules, link = _rules(head.word, block)
        entry = Entry(head.word, head.substitute, head.rank, head.tags, rules, link)
        self._add(block.head.number, entry)

    def _none(self, block: _Block, rest: str) -> None:
        rules, link = _rules("NONE", block)
        if link or not rules:
            raise ScriptError(f"{block.head.number}: none needs rules and no link")
        self.none = Entry("NONE", rules=rules)

    def _memory(self, block: _Block, rest: str) -> None:
        forms = tuple(_memory_form(line) for line in block.body)
        count = len(forms)
        if not rest or count == 0 or count & (count - 1):
            raise ScriptError(
                f"{block.head.number}: memory needs a keyword and 1, 2, 4, 8 ... forms")
        self.memory = MemoryRule(rest.upper(), forms)

    def _add(self, number: int, entry: Entry) -> None:
        if entry.word in self.entries:
            raise ScriptError(f"{number}: {entry.word} is defined twice")
        self.entries[entry.word] = entry

    def _check_complete(self) -> Entry:
        """Raise ScriptError where the script is incomplete; returns its NONE entry."""
        if not self.greeting or not self.nomatch or self.none is None:
            raise ScriptError(" a script needs a greeting, nomatch lines and a none block")
        for entry in [*self.entries.values(), self.none]:
            for target in _targets(entry):
                if not self.entries.get(target, Entry("")).is_keyword:
                    raise ScriptError(f" {entry.word} links to {target}, which is no keyword")
        return self.none


def _targets(entry: Entry) -> list[str]:
    found = [entry.link] if entry.link else []
    for rule in entry.rules:
        found += [r.target for r in rule.reassemblies if r.target]
    return found


def _entry_head(number: int, rest: str) -> Entry:
    """WORD [= SUBSTITUTE] [rank N] [tags TAG ...]"""
    words = rest.upper().split()
    if not words:
        raise ScriptError(f"{number}: a word is missing")
    word, substitute, rank = words[0], "", 0
    tags: tuple[str, ...] = ()
    i = 1
    while i < len(words):
        if words[i] == "=" and i + 1 < len(words):
            substitute, i = words[i + 1], i + 2
        elif words[i] == "RANK" and i + 1 < len(words) and words[i + 1].isdigit():
            rank, i = int(words[i + 1]), i + 2
        elif words[i] == "TAGS":
            tags, i = tuple(words[i + 1:]), len(words)
        else:
            raise ScriptError(f"{number}: unexpected {words[i]!r} (= WORD, rank N, tags ...)")
    return Entry(word, substitute, rank, tags)


def _rules(word: str, block: _Block) -> tuple[tuple[Rule, ...], str]:
    """The indented lines of a key or none block -> its rules and its final link, if any."""
    rules: list[Rule] = []
    link = ""
    lines = block.body
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.depth != 1 or link:
            raise ScriptError(f"{line.number}: expected a pattern indented {INDENT} spaces")
        if line.text.startswith("=>"):
            link, i = _link(line), i + 1
            continue
        pattern = _pattern(line)
        body = []
        i += 1
        while i < len(lines) and lines[i].depth == 2:
            body.append(_reassembly(lines[i], len(pattern)))
            i += 1
        if not body:
            raise ScriptError(f"{line.number}: a pattern needs reassemblies under it")
        rules.append(Rule(f"{word}:{len(rules) + 1}", pattern, tuple(body), line.text))
    if not rules and not link:
        raise ScriptError(f"{block.head.number}: a key needs rules or a link (=> KEY)")
    return tuple(rules), link


def _link(line: _Line) -> str:
    target = line.text[2:].strip().upper()
    if not target or " " in target:
        raise ScriptError(f"{line.number}: write a link as => KEYWORD")
    return target


def _pattern(line: _Line) -> tuple[Element, ...]:
    elements: list[Element] = []
    for token in _ELEMENT.findall(line.text.upper()):
        if token.startswith("("):
            inner = token[1:-1].strip()
            kind, words = inner[:1], frozenset(inner[1:].split())
            if kind not in "*/" or not kind or not words:
                raise ScriptError(f"{line.number}: write a group as (*A B C) or (/TAG)")
            elements.append((kind, words))
        else:
            elements.append(int(token) if token.isdigit() else token)
    if not elements:
        raise ScriptError(f"{line.number}: an empty pattern")
    return tuple(elements)


def _reassembly(line: _Line, parts: int) -> Reassembly:
    text = line.text
    if text.upper() == "NEWKEY":
        return Reassembly("newkey", source=text)
    if text.startswith("=>"):
        return Reassembly("link", target=_link(line), source=text)
    if text.upper().startswith("PRE "):
        body, arrow, target = text[4:].partition("=>")
        if not arrow:
            raise ScriptError(f"{line.number}: write PRE as PRE WORDS => KEYWORD")
        target_line = _Line(line.number, 2, "=>" + target)
        return Reassembly("pre", _pieces(line, body.upper(), parts), _link(target_line), text)
    return Reassembly("text", _pieces(line, text, parts), source=text)


def _pieces(line: _Line, text: str, parts: int) -> tuple[Piece, ...]:
    pieces: list[Piece] = []
    for token in text.split():
        if token.isdigit():
            if not 1 <= int(token) <= parts:
                raise ScriptError(f"{line.number}: part {token} of a {parts}-part pattern")
            pieces.append(int(token))
        else:
            pieces.append(token)
    return tuple(pieces)


def _memory_form(line: _Line) -> tuple[tuple[Element, ...], tuple[Piece, ...]]:
    pattern_text, equals, answer = line.text.partition(" = ")
    if line.depth != 1 or not equals:
        raise ScriptError(f"{line.number}: write a memory form as PATTERN = ANSWER")
    pattern = _pattern(_Line(line.number, 1, pattern_text))
    return pattern, _pieces(line, answer, len(pattern))
