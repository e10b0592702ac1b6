"""Evol-Instruct: make instructions harder (in depth) or branch out (in breadth), round after round.

Each round gives every lineage one operator, drawn by (seed, round, lineage): four in-depth rewrites (add a
constraint, deepen, concretise, require more reasoning steps) and one in-breadth mutation. WizardLM never
removes a failed evolution; here each one is eliminated with a counted reason and its lineage carries on
from the last good version:

* ``evolve-failed``: the call failed, the reply was cut by max_tokens, empty, a refusal, or under 3 words;
* ``evolve-unchanged``: the same instruction again (same words, or ROUGE-L ≥ 0.95 with its parent);
* ``evolve-copied-prompt``: the reply repeats the operator prompt's own wording ("original instruction",
  "rewritten instruction", "#Given Prompt#", …).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field

from ..llm import Request
from ..quality.rouge import rouge_l_f1
from ..templates import TemplateEngine
from .text import Generate, TextSettings

OPERATORS = (
    ("add-constraints", "self_instruct/evol_depth#1"),
    ("deepen", "self_instruct/evol_depth#2"),
    ("concretise", "self_instruct/evol_depth#3"),
    ("more-reasoning", "self_instruct/evol_depth#4"),
    ("breadth", "self_instruct/evol_breadth"),
)
# With an image context: the same five operators, phrased for questions about a photo.
IMAGE_OPERATORS = tuple((name, f"self_instruct/evol_image#{k}") for k, (name, _) in enumerate(OPERATORS, 1))
FAILED = "evolve-failed"
UNCHANGED = "evolve-unchanged"
COPIED = "evolve-copied-prompt"

_COPY = re.compile(r"original instruction|rewritten instruction|new instruction\s*:|given prompt|rewritten prompt"
                   r"|#\s*(?:given|rewritten|created)\s*prompt\s*#|rewrite the instruction|i want you to act",
                   re.I)
_REFUSAL = re.compile(r"\b(?:I'?m sorry|I am sorry|I apologi[sz]e|as an AI\b|I can(?:no|')t help)", re.I)


@dataclass
class Evolution:
    text: str
    parent: str
    root: str
    operator: str
    template: str
    round: int
    raw: str
    index: int = 0          # which of the input instructions this lineage started from


@dataclass
class EvolveResult:
    evolutions: list[Evolution] = field(default_factory=list)
    eliminated: Counter = field(default_factory=Counter)
    by_operator: Counter = field(default_factory=Counter)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def eliminate(parent: str, text: str | None, ok: bool, finish_reason: str | None) -> str | None:
    """The elimination reason for one evolution, or None when it is kept."""
    if not ok or text is None or finish_reason == "length":
        return FAILED
    body = text.strip()
    if len(body.split()) < 3 or _REFUSAL.search(body):
        return FAILED
    if _COPY.search(body):
        return COPIED
    if _norm(body) == _norm(parent) or rouge_l_f1(body, parent) >= 0.95:
        return UNCHANGED
    return None


def _clean(text: str, finish_reason: str) -> str:
    return text.strip().strip('"').strip()


def evolve(instructions: list[str], rounds: int, settings: TextSettings, generate: Generate,
           templates: TemplateEngine, contexts: list[str] | None = None, key: str = "evolve") -> EvolveResult:
    """Evolve each instruction ``rounds`` times. With ``contexts`` (one per instruction: an image's
    captions and boxes) the photo-question operators are used, so evolutions stay answerable from it."""
    out = EvolveResult()
    current = list(instructions)
    operators = IMAGE_OPERATORS if contexts is not None else OPERATORS
    for r in range(rounds):
        requests = []
        ops = []
        for i, inst in enumerate(current):
            op, template = random.Random(f"{settings.seed}:{key}:{r}:{i}").choice(operators)
            ops.append((op, template))
            values = {"instruction": inst} if contexts is None else {"instruction": inst, "context": contexts[i]}
            prompt = templates.render(template, values).rstrip()
            requests.append(Request(key=f"{key}:{r}:{i}", messages=[{"role": "user", "content": prompt}],
                                    temperature=settings.temperature, top_p=settings.top_p,
                                    max_tokens=settings.max_tokens, seed=settings.seed,
                                    meta={"stage": "evolve", "round": r, "operator": op}))
        for i, res in enumerate(generate(requests, _clean)):
            parent = current[i]
            op, template = ops[i]
            reason = eliminate(parent, res.parsed if res.ok else None, res.ok, res.finish_reason)
            if reason:
                out.eliminated[reason] += 1
                continue
            out.by_operator[op] += 1
            out.evolutions.append(Evolution(res.parsed, parent, instructions[i], op, template, r + 1,
                                            res.raw or "", i))
            current[i] = res.parsed
    return out
