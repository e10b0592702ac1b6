"""Exact ROUGE-L F1 near-duplicate detection, fast enough for Self-Instruct pools of 100k instructions.

ROUGE-L F1 between token lists ``a`` and ``b`` is ``2·LCS / (|a| + |b|)`` (precision ``LCS/|a|`` and recall
``LCS/|b|`` combine to that), which is exactly rapidfuzz's Indel normalised similarity once every distinct
token is mapped to one character. So a pool is kept as short strings of token ids and a candidate is
compared against all of them in one C call (``rapidfuzz.process.cdist``), instead of re-tokenising the pool
and computing one LCS at a time in Python as ``rouge_score`` does.

Decisions are exact, not approximate: floats only pick the few pairs worth a look (with a margin), and the
final test ``score < threshold`` is done in integers on the LCS length (``threshold`` is read as the decimal
it is written as: 0.7 means 7/10).

Tokenisation matches ``rouge_score``'s default (lower-case, runs of letters and digits, no stemming) on
ASCII text, and is Unicode-aware beyond it: letters and digits of every script count (``rouge_score`` keeps
only ``[a-z0-9]`` and scores two identical Chinese strings 0), text is NFKC-normalised, and each
Han / kana / Thai character is a token of its own, since those scripts do not put spaces between words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from fractions import Fraction

__all__ = ["RougeIndex", "encode_tokens", "rouge_l_f1", "tokenize"]

# Scripts written without spaces: one token per character.
_SOLO = "\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
# Combining marks inside words (Latin accents left over after NFKC, Hebrew/Arabic points, Indic vowel
# signs): Python's \w does not match them and would cut a Hindi word into pieces.
_MARKS = "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed" \
         "\u0900-\u0963\u0966-\u0dff"
_TOKEN = re.compile(rf"[{_SOLO}]|(?:[^\W_{_SOLO}]|[{_MARKS}])+")
_ASCII_TOKEN = re.compile(r"[a-z0-9]+")
_CHUNK = 1024


def tokenize(text: str) -> list[str]:
    """Lower-cased ROUGE tokens of ``text`` (see the module docstring)."""
    if text.isascii():
        return _ASCII_TOKEN.findall(text.lower())
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def _lcs(a: Sequence, b: Sequence) -> int:
    from rapidfuzz.distance import Indel

    if not a or not b:
        return 0
    return (len(a) + len(b) - Indel.distance(a, b)) // 2


def rouge_l_f1(a: str | Sequence[str], b: str | Sequence[str]) -> float:
    """ROUGE-L F1 of two texts (or two token lists). 0.0 when either side has no token, as rouge_score."""
    ta = tokenize(a) if isinstance(a, str) else list(a)
    tb = tokenize(b) if isinstance(b, str) else list(b)
    if not ta or not tb:
        return 0.0
    return 2 * _lcs(ta, tb) / (len(ta) + len(tb))


def _first_code_points():
    # One character per distinct token; surrogates cannot live in a str that rapidfuzz accepts.
    cp = 1
    while cp < 0x110000:
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0xE000
        yield chr(cp)
        cp += 1


class _Vocab:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self._next = _first_code_points()

    def encode(self, tokens: Iterable[str], grow: bool = True) -> str:
        out = []
        for tok in tokens:
            ch = self.ids.get(tok)
            if ch is None:
                if not grow:
                    # A token the pool has never seen matches nothing in it; any unused character will do.
                    out.append("\x00")
                    continue
                try:
                    ch = next(self._next)
                except StopIteration:
                    raise OverflowError("more than 1.1 million distinct tokens in one ROUGE index") from None
                self.ids[tok] = ch
            out.append(ch)
        return "".join(out)


def encode_tokens(texts: Iterable[str]) -> list[str]:
    """Token-id strings for ``texts`` over one shared vocabulary (for callers that batch themselves)."""
    vocab = _Vocab()
    return [vocab.encode(tokenize(t)) for t in texts]


class RougeIndex:
    """A pool of texts and the question "is this new text a near-duplicate of any of them?".

    ``is_novel(text)`` is true when the ROUGE-L F1 of ``text`` with every pooled text is below
    ``threshold`` (Self-Instruct's rule with 0.7). ``filter_batch`` decides a list at once, exactly as if the
    candidates were tried one at a time and each kept one joined the pool before the next was tried.
    """

    def __init__(self, threshold: float = 0.7, texts: Iterable[str] = (), *, workers: int = 1):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self._frac = Fraction(str(threshold)).limit_denominator(10**9)
        self.workers = workers
        self._vocab = _Vocab()
        self._codes: list[str] = []
        self._lens: list[int] = []
        self.texts: list[str] = []
        self._np_lens = None
        for t in texts:
            self.add(t)

    def __len__(self) -> int:
        return len(self._codes)

    def encode(self, text: str, grow: bool = True) -> str:
        return self._vocab.encode(tokenize(text), grow=grow)

    def add(self, text: str) -> None:
        self._add_code(text, self.encode(text))

    def _add_code(self, text: str, code: str) -> None:
        self.texts.append(text)
        self._codes.append(code)
        self._lens.append(len(code))
        self._np_lens = None

    def _lengths(self):
        import numpy as np

        if self._np_lens is None or len(self._np_lens) != len(self._lens):
            self._np_lens = np.asarray(self._lens, dtype=np.int64)
        return self._np_lens

    def _novel_exact(self, lcs: int, total: int) -> bool:
        # 2·LCS/total < p/q, in integers.
        return total == 0 or lcs == 0 or 2 * lcs * self._frac.denominator < self._frac.numerator * total

    def scores(self, text: str):
        """ROUGE-L F1 of ``text`` with each pooled text, as a numpy array in pool order."""
        import numpy as np
        from rapidfuzz import process
        from rapidfuzz.distance import Indel

        code = self.encode(text, grow=False)
        if not self._codes:
            return np.zeros(0)
        dist = process.cdist([code], self._codes, scorer=Indel.distance, dtype=np.int64,
                             workers=self.workers)[0]
        total = self._lengths() + len(code)
        lcs = (total - dist) // 2
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where((lcs > 0) & (total > 0), 2 * lcs / np.maximum(total, 1), 0.0)
        return out

    def max_score(self, text: str) -> float:
        """The highest ROUGE-L F1 of ``text`` with any pooled text (0.0 for an empty pool)."""
        s = self.scores(text)
        return float(s.max()) if len(s) else 0.0

    def most_similar(self, text: str) -> tuple[float, str | None]:
        s = self.scores(text)
        if not len(s):
            return 0.0, None
        j = int(s.argmax())
        return float(s[j]), self.texts[j]

    def is_novel(self, text: str) -> bool:
        return self._first_hits([self.encode(text, grow=False)])[0] is None

    def _first_hits(self, codes: list[str]) -> list[int | None]:
        """For each code, the index of a pooled text it is too close to, or None."""
        import numpy as np
        from rapidfuzz import process
        from rapidfuzz.distance import Indel

        if not self._codes or not codes:
            return [None] * len(codes)
        # Prefilter in floats with a margin: normalised distance = 1 - F1, so a pair can only be too close
        # when it is at most 1 - threshold (+ slack for rounding); the exact test then settles each one.
        cutoff = min(1.0, 1.0 - self.threshold + 1e-9)
        nd = process.cdist(codes, self._codes, scorer=Indel.normalized_distance, score_cutoff=cutoff,
                           dtype=np.float32, workers=self.workers)
        out: list[int | None] = []
        rows, cols = np.nonzero(nd <= cutoff + 1e-6)
        hits: dict[int, list[int]] = {}
        for r, c in zip(rows.tolist(), cols.tolist()):
            hits.setdefault(r, []).append(c)
        for i, code in enumerate(codes):
            found = None
            for j in hits.get(i, ()):
                other = self._codes[j]
                if self._too_close(code, other):
                    found = j
                    break
            out.append(found)
        return out

    def _too_close(self, a: str, b: str) -> bool:
        return not self._novel_exact(_lcs(a, b), len(a) + len(b))

    def filter_batch(self, candidates: Iterable[str], *, add: bool = True) -> list[bool]:
        """Keep/drop decision for each candidate, in order; kept ones join the pool when ``add``.

        Same decisions as trying them one at a time: the pool is checked for the whole batch in one call,
        then each survivor is checked against the earlier survivors kept in this batch.
        """
        cands = list(candidates)
        keep: list[bool] = []
        # Chunks bound the candidate-by-candidate matrix; each chunk sees the survivors of earlier chunks
        # in the pool, so the result does not depend on the chunk size.
        for start in range(0, len(cands), _CHUNK):
            keep += self._filter_chunk(cands[start:start + _CHUNK], add)
        return keep

    def _filter_chunk(self, cands: list[str], add: bool) -> list[bool]:
        import numpy as np
        from rapidfuzz import process
        from rapidfuzz.distance import Indel

        codes = [self.encode(t) for t in cands]
        first = self._first_hits(codes)
        cutoff = min(1.0, 1.0 - self.threshold + 1e-9)
        near = process.cdist(codes, codes, scorer=Indel.normalized_distance, score_cutoff=cutoff,
                             dtype=np.float32, workers=self.workers) <= cutoff + 1e-6
        keep: list[bool] = []
        kept: list[int] = []
        for i, (text, code, hit) in enumerate(zip(cands, codes, first)):
            ok = hit is None and not any(near[i, j] and self._too_close(code, codes[j]) for j in kept)
            keep.append(ok)
            if ok:
                kept.append(i)
                if add:
                    self._add_code(text, code)
        return keep
