"""A parsed ELIZA script: what parser.py builds from a script file and the interpreter reads."""

from __future__ import annotations

from dataclasses import dataclass, field

# A decomposition element: 0 (any number of words), n (exactly n words), a word,
# ("*", words) for any one of those words, ("/", tags) for any one word with one of those tags.
Element = int | str | tuple[str, frozenset[str]]

# A reassembly element: a word to print, or the number of a decomposition part to insert.
Piece = int | str

DELIMITER = -1  # the mark of a delimiter in Script.marks (keywords are marked by rank, >= 0)


@dataclass(frozen=True)
class Reassembly:
    """One way to answer. `kind` says which of the script's forms it is:

    "text"   print `pieces`;
    "link"   (=KEY): try `target`'s rules on the same words;
    "newkey" (NEWKEY): try the next keyword on the keystack;
    "pre"    (PRE (pieces) (=KEY)): rebuild the words from `pieces`, then try `target`.
    """

    kind: str
    pieces: tuple[Piece, ...] = ()
    target: str = ""
    source: str = ""  # as written in the script, for /why


@dataclass(frozen=True)
class Rule:
    """A decomposition pattern and the reassemblies used in turn when it matches."""

    id: str  # "KEYWORD:n", the key of this rule's counter in a chat's state
    pattern: tuple[Element, ...]
    reassemblies: tuple[Reassembly, ...]
    source: str = ""


@dataclass(frozen=True)
class Entry:
    """A word the script knows. Only an entry with rules or a link is a keyword."""

    word: str
    substitute: str = ""
    rank: int = 0
    tags: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    link: str = ""  # (=KEY) after the rules, or alone: where to go when no rule matches

    @property
    def is_keyword(self) -> bool:
        return bool(self.rules or self.link)


@dataclass(frozen=True)
class MemoryRule:
    """MEMORY KEY: forms of a sentence containing KEY kept for later; one is chosen by hash."""

    keyword: str
    forms: tuple[tuple[tuple[Element, ...], tuple[Piece, ...]], ...]


@dataclass(frozen=True)
class Script:
    name: str
    version: str  # name@hash of the file's text, so a stored reply names the script that made it
    greeting: str
    delimiters: frozenset[str]
    nomatch: tuple[str, ...]  # the answers the 1966 program had built in, chosen by the counter
    entries: dict[str, Entry]
    none: Entry  # NONE: the rules used when no keyword is left
    memory: MemoryRule
    tags: dict[str, frozenset[str]] = field(default_factory=dict)  # tag -> words with it
    # Derived from the above for the scan, which looks at every word of every message:
    marks: dict[str, int] = field(init=False, repr=False)  # keyword -> rank; delimiter -> -1
    substitutes: dict[str, str] = field(init=False, repr=False)  # word -> its substitute

    def __post_init__(self) -> None:
        marks = {word: entry.rank for word, entry in self.entries.items() if entry.is_keyword}
        marks |= dict.fromkeys(self.delimiters, DELIMITER)
        substitutes = {word: e.substitute for word, e in self.entries.items() if e.substitute}
        object.__setattr__(self, "marks", marks)
        object.__setattr__(self, "substitutes", substitutes)
