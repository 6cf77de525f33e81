"""Small scripts for the ELIZA tests: a fixed frame around the rules a test is about."""

from __future__ import annotations

from pathlib import Path

from engines.eliza.interpreter import Answer, respond
from engines.eliza.parser import load_script, parse_script
from engines.eliza.script import Script
from engines.eliza.state import ChatState

SCRIPTS = Path(__file__).resolve().parent.parent / "engines" / "eliza" / "scripts"

FRAME = """\
greeting HELLO
delimiters , . BUT
nomatch NOMATCH ONE
nomatch NOMATCH TWO
nomatch NOMATCH THREE
nomatch NOMATCH FOUR
none
    0
        NONE ONE
        NONE TWO
"""

PAPER = [  # Weizenbaum 1966, CACM 9(1), p. 36-37: the user's lines and DOCTOR's answers
    ("Men are all alike.", "IN WHAT WAY"),
    ("They're always bugging us about something or other.",
     "CAN YOU THINK OF A SPECIFIC EXAMPLE"),
    ("Well, my boyfriend made me come here.", "YOUR BOYFRIEND MADE YOU COME HERE"),
    ("He says I'm depressed much of the time.", "I AM SORRY TO HEAR YOU ARE DEPRESSED"),
    ("It's true. I am unhappy.", "DO YOU THINK COMING HERE WILL HELP YOU NOT TO BE UNHAPPY"),
    ("I need some help, that much seems certain.",
     "WHAT WOULD IT MEAN TO YOU IF YOU GOT SOME HELP"),
    ("Perhaps I could learn to get along with my mother.", "TELL ME MORE ABOUT YOUR FAMILY"),
    ("My mother takes care of me.", "WHO ELSE IN YOUR FAMILY TAKES CARE OF YOU"),
    ("My father.", "YOUR FATHER"),
    ("You are like my father in some ways.", "WHAT RESEMBLANCE DO YOU SEE"),
    ("You are not very aggressive but I think you don't want me to notice that.",
     "WHAT MAKES YOU THINK I AM NOT VERY AGGRESSIVE"),
    ("You don't argue with me.", "WHY DO YOU THINK I DON'T ARGUE WITH YOU"),
    ("You are afraid of me.", "DOES IT PLEASE YOU TO BELIEVE I AM AFRAID OF YOU"),
    ("My father is afraid of everybody.", "WHAT ELSE COMES TO MIND WHEN YOU THINK OF YOUR FATHER"),
    ("Bullies.",
     "DOES THAT HAVE ANYTHING TO DO WITH THE FACT THAT YOUR BOYFRIEND MADE YOU COME HERE"),
]


def script(rules: str) -> Script:
    return parse_script(FRAME + rules, "test.script")


def doctor(lang: str = "en") -> Script:
    return load_script(SCRIPTS / f"doctor.{lang}")


class Chat:
    """One conversation with a script: its state carries over from message to message."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.state = ChatState()

    def answer(self, text: str) -> Answer:
        return respond(self.script, self.state, text)

    def say(self, text: str) -> str:
        return self.answer(text).text
