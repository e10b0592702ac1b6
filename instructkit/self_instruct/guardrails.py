"""Checks on generated turns; each failure is a counted drop reason, checked in this order.

* ``leak``: the reply talks about its sources (captions, bounding boxes, coordinates, "the description",
  a coordinate list) instead of answering as if looking at the image.
* ``count-contradiction``: a number attached to a label disagrees with how many boxes that label has.
  Claiming more than there are is always a contradiction; claiming fewer only in a statement of the total
  ("there are two towers", or any number in the answer to a "how many" question about the label), since
  "two towers flank the rocket" is true of a picture with four.
* ``one-sided-turn`` / ``empty-turn``: a question without an answer or the reverse, a blank side.
* ``refusal``: "I'm sorry", "as an AI", "I cannot see the image" and the like.
* ``too-short`` / ``too-long``: answer word counts outside the recipe's bounds; ``question-too-long``.
* ``repeated-question``: two questions of one conversation are the same (ROUGE-L ≥ 0.8).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ..quality.rouge import rouge_l_f1
from .parse import EMPTY_TURN, ONE_SIDED

LEAK = "leak"
COUNT = "count-contradiction"
REFUSAL = "refusal"
TOO_SHORT = "too-short"
TOO_LONG = "too-long"
QUESTION_TOO_LONG = "question-too-long"
REPEATED = "repeated-question"
NO_TURNS = "no-turns"

_LEAK = re.compile(
    r"\b(?:captions?|captioned|bounding[\s-]*box(?:es)?|bbox(?:es)?|coordinates?|the description"
    r"|the (?:given|provided) (?:context|information|annotations?|text|data)|annotations?)\b"
    r"|\[\s*-?\d*\.\d+\s*,\s*-?\d*\.\d+",
    re.I)
_REFUSAL = re.compile(
    r"\b(?:I'?m sorry|I am sorry|I apologi[sz]e|as an AI\b|as a language model"
    r"|I (?:can ?not|can't|cannot|am unable to|'m unable to|am not able to|do not have|don't have) "
    r"(?:see|view|access|determine|tell|provide|answer|help|look)"
    r"|unable to (?:see|view|access) the (?:image|picture|photo))",
    re.I)
_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_NUM = r"(?P<num>\d{1,3}|" + "|".join(_NUMBERS) + r")"
_IRREGULAR = {"person": ["people", "persons"], "man": ["men"], "woman": ["women"], "child": ["children"],
              "mouse": ["mice"], "knife": ["knives"], "sheep": ["sheep"], "fish": ["fish"], "foot": ["feet"],
              "tooth": ["teeth"], "goose": ["geese"], "leaf": ["leaves"], "shelf": ["shelves"]}
_TOTAL = re.compile(r"(?:there (?:are|is|were|was)|there's|total of|in total|exactly|only)\s*$", re.I)


@dataclass
class Limits:
    min_answer_words: int = 1
    max_answer_words: int = 400
    max_question_words: int = 80
    repeat_threshold: float = 0.8


def plural_forms(label: str) -> list[str]:
    head, _, last = label.lower().rpartition(" ")
    forms = {last}
    forms.update(_IRREGULAR.get(last, []))
    if last.endswith(("s", "x", "z", "ch", "sh")):
        forms.add(last + "es")
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        forms.add(last[:-1] + "ies")
    else:
        forms.add(last + "s")
    prefix = head + " " if head else ""
    return sorted((prefix + f for f in forms), key=len, reverse=True)


def _count_pattern(label: str) -> re.Pattern:
    forms = "|".join(re.escape(f).replace(r"\ ", r"\s+") for f in plural_forms(label))
    # One optional adjective between the number and the noun: "four tall towers".
    return re.compile(rf"\b{_NUM}\s+(?:[a-z-]+\s+)?(?:{forms})\b", re.I)


def _value(num: str) -> int:
    return int(num) if num.isdigit() else _NUMBERS[num.lower()]


def count_contradiction(turns: Iterable[tuple[str, str]], counts: Counter) -> str | None:
    """The first phrase whose number disagrees with the box count of its label, or None."""
    if not counts:
        return None
    for label, n in counts.items():
        rx = _count_pattern(label)
        mention = re.compile(r"\b(?:" + "|".join(re.escape(f) for f in plural_forms(label)) + r")\b", re.I)
        for question, answer in turns:
            how_many = bool(re.search(r"\bhow many\b", question, re.I)) and bool(mention.search(question))
            for text, is_answer in ((question, False), (answer, True)):
                for m in rx.finditer(text):
                    value = _value(m.group("num"))
                    if value == n:
                        continue
                    total = bool(_TOTAL.search(text[: m.start()])) or (is_answer and how_many)
                    if value > n or total:
                        return m.group(0)
    return None


def _words(text: str) -> int:
    return len(text.split())


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def check_turns(turns: list[tuple[str, str]], problems: Iterable[str] = (), counts: Counter | None = None,
                limits: Limits | None = None) -> str | None:
    """The drop reason for a parsed reply, or None when it is clean."""
    limits = limits or Limits()
    problems = list(problems)
    if not turns:
        return problems[0] if problems else NO_TURNS
    for q, a in turns:
        if _LEAK.search(q) or _LEAK.search(a):
            return LEAK
    if counts and count_contradiction(turns, counts):
        return COUNT
    if ONE_SIDED in problems:
        return ONE_SIDED
    if EMPTY_TURN in problems:
        return EMPTY_TURN
    for _, a in turns:
        if _REFUSAL.search(a):
            return REFUSAL
    for q, a in turns:
        n = _words(a)
        if n < limits.min_answer_words:
            return TOO_SHORT
        if n > limits.max_answer_words:
            return TOO_LONG
        if _words(q) > limits.max_question_words:
            return QUESTION_TOO_LONG
    seen: list[str] = []
    for q, _ in turns:
        nq = _norm(q)
        if any(nq == s or rouge_l_f1(nq, s) >= limits.repeat_threshold for s in seen):
            return REPEATED
        seen.append(nq)
    return None
