"""Verb–noun pairs of instructions, by a documented heuristic (no parser model can be installed offline).

Self-Instruct plots the root verb of each instruction and its direct object. Without a dependency parser we
use the shape instructions nearly always have:

1. Take the first sentence-like clause of the instruction (``<image>`` removed, lower-cased), and drop
   leading labels and politeness: ``question:``, ``q:``, ``instruction:``, ``please``, ``can you``,
   ``could you``, ``would you``, ``i want you to``, ``help me``, ``now``, ``kindly``.
2. Imperative: if the first word is in ``VERBS`` (about 200 verbs that open instructions) it is the verb.
   Its object is the first later word that is not a determiner, pronoun, preposition, adverb or common
   adjective (``SKIP``), stopping at punctuation; a verb with no such word gets the object ``-``.
3. Question: if the first word is a question word or auxiliary (``what``, ``how``, ``is``, ``does``…),
   the instruction is counted as a question under that word instead (``question_openers``).
4. Anything else counts as ``other``.

It gets "Describe the image in detail" → (describe, image), "Please write a short poem about cats" →
(write, poem), "Can you list three uses of the object?" → (list, uses). It misses objects behind
adjectives it does not know ("Write a funny poem" → (write, funny)); treat the pairs as a coverage
overview, as Self-Instruct does, not as a parse.
"""

from __future__ import annotations

import re

from .text import words

VERBS = frozenset("""
add analyze analyse answer apply arrange ask assess assign brainstorm build calculate categorize categorise
change check choose cite classify combine compare compile complete compose compute condense construct
convert correct count create critique decide decode define delete derive describe design detect determine
develop devise diagnose discuss distinguish draft draw edit elaborate enumerate estimate evaluate examine
explain explore express extract fill find finish fix focus follow format formulate generate give group
guess help highlight identify illustrate imagine improve infer interpret introduce judge justify label
list locate look make map match mention modify name note observe offer organize organise outline
paraphrase pick plan point predict prepare present prioritize produce propose provide rank rate read
recommend recognize recognise reformulate rephrase replace report respond restate review revise rewrite
say score select share show simplify solve sort specify spell state suggest summarize summarise tell
think transcribe transform translate turn use verify view visualize write
""".split())

QUESTION_WORDS = frozenset("""
what which who whom whose when where why how is are was were do does did can could would will should
shall may might has have had am
""".split())

SKIP = frozenset("""
a an the this that these those my your his her its our their some any all each every no both either
neither another other such few many much more most several me us him them it you i we they one
of in on at to for with from by about into onto over under between among through within without
up down out off away back briefly carefully clearly concisely quickly simply also just only very
really please then here there following given provided above below main key short brief detailed
long simple new different same whole entire overall specific possible important little big small
large good best first second third last next two three four five several
red green blue yellow black white orange purple pink brown gray grey
""".split())

_PREFIXES = ("question:", "q:", "instruction:", "instructions:", "task:", "prompt:", "user:")
_POLITE = (("i", "want", "you", "to"), ("i", "would", "like", "you", "to"), ("can", "you"),
           ("could", "you"), ("would", "you"), ("will", "you"), ("help", "me"), ("please",),
           ("kindly",), ("now",), ("then",), ("also",), ("next",), ("finally",))
_CLAUSE = re.compile(r"[.!?;:\n]")


def verb_noun(instruction: str) -> tuple[str, str, str]:
    """(kind, verb, noun): kind is ``pair`` (verb and object), ``question`` (verb holds the question
    word, noun is empty) or ``other``."""
    text = instruction.replace("<image>", " ").strip().lower()
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if text.startswith(p):
                text = text[len(p):].lstrip()
                changed = True
    clause = _first_clause(text)
    toks = words(clause)
    changed = True
    while changed and toks:
        changed = False
        for pre in _POLITE:
            if tuple(toks[:len(pre)]) == pre and len(toks) > len(pre):
                toks = toks[len(pre):]
                changed = True
                break
    if not toks:
        return "other", "", ""
    head = toks[0]
    if head in VERBS:
        noun = next((t for t in toks[1:] if t not in SKIP and not t.isdigit()), "-")
        return "pair", head, noun
    if head in QUESTION_WORDS:
        return "question", head, ""
    return "other", "", ""


def _first_clause(text: str) -> str:
    m = _CLAUSE.search(text)
    # A clause cut at a colon too early ("answer: ...") keeps going to the next boundary.
    while m is not None and len(text[:m.start()].split()) < 2:
        nxt = _CLAUSE.search(text, m.end())
        if nxt is None:
            return text
        m = nxt
    return text if m is None else text[:m.start()]
