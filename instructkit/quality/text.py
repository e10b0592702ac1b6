"""Text helpers shared by stats and filters: Unicode-aware words, the text of a row, normalisation.

Words are runs of letters/digits, except that each CJK, kana or hangul character is a word of its own:
scripts written without spaces would otherwise count a whole sentence as one word (the bug that makes
``rouge_score`` score two identical Chinese strings 0).
"""

from __future__ import annotations

import re
import unicodedata

from ..records import IMAGE_TOKEN, Record

_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+(?:['’][^\W_]+)*")
_SPACE = re.compile(r"\s+")


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (``<image>`` placeholders are not words)."""
    return _WORD.findall(strip_placeholders(text).lower())


def strip_placeholders(text: str) -> str:
    return text.replace(IMAGE_TOKEN, " ") if IMAGE_TOKEN in text else text


def instructions(record: Record) -> list[str]:
    """The user turns with their ``<image>`` placeholders removed and whitespace trimmed."""
    return [strip_placeholders(u).strip() for u, _ in record.turns()]


def responses(record: Record) -> list[str]:
    return [a for _, a in record.turns()]


def normalise(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: what exact dedup compares. Punctuation is kept because
    "2+2" and "2-2" are different questions."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
