"""Parse an LLM's reply into turns.

LLaVA's few-shot replies are ``Question:`` … ``===`` … ``Answer:`` … blocks. Real replies are sloppier:
extra blank lines and spaces, the label and its text on one line, no final separator, ``Question 2:`` or
``2. Question:``, ``**Question:**`` in markdown bold, ``Q:``/``A:``, a chatty line before the first block.
All of those parse. A reply with no block at all is garbage (``no-qa-blocks``); a question without an answer
(or the reverse) parses, and is flagged as ``one-sided-turn`` for the guardrails to count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NO_BLOCKS = "no-qa-blocks"
EMPTY_REPLY = "empty-reply"
ONE_SIDED = "one-sided-turn"
EMPTY_TURN = "empty-turn"

_BOLD = r"(?:\*\*|__|\*)?"
_LABEL = re.compile(
    rf"^\s*(?:#+\s*)?(?:\d+\s*[.)]\s*)?{_BOLD}\s*(?P<kind>question|answer|q|a)\s*(?:\d+\s*)?"
    rf"(?:(?::{_BOLD})|(?:{_BOLD}\s*:)|(?:{_BOLD}\s*$))\s*(?P<rest>.*)$",
    re.I)
_SEPARATOR = re.compile(r"^\s*(?:={2,}|-{3,}|\*{3,}|_{3,})\s*$")


@dataclass
class Parsed:
    turns: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _label(line: str) -> tuple[str, str] | None:
    m = _LABEL.match(line)
    if not m:
        return None
    kind = m.group("kind").lower()
    # "A:" / "Q:" need their colon; a bare "A" at the start of a sentence is not a label.
    if len(kind) == 1 and ":" not in line[: m.start("rest") + 1]:
        return None
    rest = m.group("rest").strip()
    if rest.endswith(("**", "__")):
        rest = rest[:-2].rstrip()
    return ("q" if kind.startswith("q") else "a"), rest


def parse_qa(text: str) -> Parsed:
    """Turns of a ``Question:``/``Answer:`` reply, in order; problems name what was odd."""
    blocks: list[list] = []          # [kind, lines]
    current: list | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if _SEPARATOR.match(line):
            current = None
            continue
        lab = _label(line)
        if lab is not None:
            current = [lab[0], [lab[1]] if lab[1] else []]
            blocks.append(current)
        elif current is not None:
            current[1].append(line)
    out = Parsed()
    pending_q: str | None = None
    for kind, lines in blocks:
        body = "\n".join(lines).strip()
        if kind == "q":
            if pending_q is not None:
                out.problems.append(ONE_SIDED)
            pending_q = body
        else:
            if pending_q is None:
                out.problems.append(ONE_SIDED)
                continue
            if not pending_q or not body:
                out.problems.append(EMPTY_TURN)
            else:
                out.turns.append((pending_q, body))
            pending_q = None
    if pending_q is not None:
        out.problems.append(ONE_SIDED)
    return out


_ANSWER_PREFIX = re.compile(rf"^\s*{_BOLD}\s*(?:answer|description|response)\s*{_BOLD}\s*:\s*{_BOLD}\s*", re.I)


def parse_single(text: str) -> str:
    """A single-answer reply (detailed description): the text, without a leading ``Answer:`` label."""
    return _ANSWER_PREFIX.sub("", text.strip(), count=1).strip()
