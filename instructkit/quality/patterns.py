"""Default refusal and leak patterns of `instructkit filter` (case-insensitive regexes over assistant turns).

Refusals: the model declined or claimed it cannot see the image; these rows teach the model to refuse.
Leaks: the answer gives away how it was generated: LLaVA-style prompts hand the LLM captions and boxes and
forbid mentioning them, so an answer that talks about "the caption", "bounding boxes" or prints normalised
coordinates, or that still holds few-shot markers or unrendered template fields, leaked its context.
"""

from __future__ import annotations

import re

REFUSAL_PATTERNS = (
    r"\bas an ai\b",
    r"\bas a(?:n ai)? (?:large )?language model\b",
    r"\bi(?:['’]m| am) (?:just )?an ai\b",
    r"\bi(?: cannot| can['’]t| can not| am unable to|['’]m unable to| am not able to|['’]m not able to) "
    r"(?:see|view|access|look at|analy[sz]e|process|open|display) (?:the |this |any |your )?(?:image|picture|photo)",
    r"\bi(?: cannot| can['’]t| can not| am unable to|['’]m unable to) see\b",
    r"\bi do(?:n['’]t| not) have (?:access to|the ability to see|the ability to view) (?:the |this |any )?"
    r"(?:image|picture|photo)",
    r"\b(?:no|there is no) (?:image|picture|photo) (?:was |has been |is )?(?:provided|attached|uploaded|shared)",
    r"\bi(?:['’]m| am) sorry,? but i (?:cannot|can['’]t|can not|am unable to)\b",
)

LEAK_PATTERNS = (
    r"\bbounding box(?:es)?\b",
    r"\b(?:according to|based on|from|in|as (?:described|mentioned|stated|given) (?:in|by)) the "
    r"(?:given |provided )?(?:captions?|annotations?|descriptions? (?:provided|given))\b",
    r"\b(?:box|bounding|given|provided|normali[sz]ed) coordinates\b",
    r"\[\s*0?\.\d+\s*,\s*0?\.\d+\s*,\s*0?\.\d+\s*,\s*0?\.\d+\s*\]",
    r"^\s*===+\s*$",
    r"\{\{[^}]*\}\}",
    r"\{(?:question|answer|caption|captions|boxes|options)\}",
)


def compile_patterns(patterns: tuple[str, ...] | list[str]) -> re.Pattern | None:
    """One alternation of all ``patterns`` (None when there are none); a bad regex is a ``re.error``."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.MULTILINE)
