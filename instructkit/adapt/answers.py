"""VQA answer normalisation and the answer policies that reduce ten annotators to training targets.

``normalize`` follows the official VQA evaluation (vqaEval.py): punctuation, then per word lower-casing,
number words to digits, articles dropped, missing apostrophes restored. Two bugs of the original are not
copied: its period regex ``(?!<=\\d)`` was meant as a look-behind, and ``sub("", text, re.UNICODE)``
passes the flag as a *count*. We strip a period unless it sits between two digits, which is what it meant.

Policies (``choose``):

* ``majority``: the normalised answer given most often; ties go to the alphabetically first normalised
  answer, so the result does not depend on the order the annotators are listed in.
* ``first``: the first annotator's answer.
* ``confident``: confidence-weighted votes (``yes`` 1, ``maybe`` 0.5, ``no`` 0.25; an answer without a
  confidence counts 1); ties by plain count, then alphabetically.
* ``all``: one target per distinct normalised answer, most frequent first (same tie rule as majority).

The text written to the record is the most frequent *raw* spelling inside the winning group (ties: the
spelling that already equals the normalised form, then alphabetically first), so ``two``/``2`` votes pool
together but the target keeps an annotator's wording.
"""

from __future__ import annotations

import re

POLICIES = ("majority", "first", "all", "confident")
CONFIDENCE_WEIGHT = {"yes": 1.0, "maybe": 0.5, "no": 0.25}

_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
          "?", "!")
_COMMA_NUMBER = re.compile(r"(\d)(,)(\d)")
_PERIOD = re.compile(r"(?<!\d)\.|\.(?!\d)")
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
            "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
# The official table of contractions written without their apostrophe.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're", "theres": "there's",
    "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll",
    "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's",
    "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll",
    "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}

# Answers repeat massively across a VQA dataset (a few tens of thousands distinct strings in millions of
# annotations), so normalising each distinct string once makes the policy cost a dict lookup per answer.
_MEMO: dict[str, str] = {}
_MEMO_MAX = 1 << 18
# The memoised answers that are their own normal form (``cat``, ``yes``, ``2``): most VQA answers are, and a
# row made only of them needs no grouping of spellings (see ``majority``). Never holds "" (a blank answer).
_FIXED: set[str] = set()


def _normalize(text: str) -> str:
    text = text.replace("\n", " ").replace("\t", " ").strip()
    comma_number = _COMMA_NUMBER.search(text) is not None
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or comma_number:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = _PERIOD.sub("", out)
    words = []
    for word in out.lower().split():
        word = _NUMBERS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def normalize(text: str) -> str:
    """The official VQA normalisation of one answer (memoised)."""
    got = _MEMO.get(text)
    if got is None:
        got = _normalize(text)
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.clear()
            _FIXED.clear()
        _MEMO[text] = got
        if got == text and got:
            _FIXED.add(got)
    return got


try:  # CPython's C helper behind Counter.update: counting ten answers in C, not in a Python loop
    from _collections import _count_elements
except ImportError:  # pragma: no cover - other interpreters
    def _count_elements(mapping: dict, iterable: list) -> None:
        for x in iterable:
            mapping[x] = mapping.get(x, 0) + 1


class Choice:
    """The outcome of a policy: target texts (one, or several for ``all``) and the vote counts."""

    __slots__ = ("texts", "counts")

    def __init__(self, texts: list[str], counts: dict[str, int]):
        self.texts = texts
        self.counts = counts


def _groups(answers: list) -> tuple[dict, dict[str, int], dict[str, str], set[str] | None]:
    """(raw votes, votes per normalised answer, one raw spelling per group, groups with several spellings).

    Raw answers are counted first (in C): VQA has about 3 distinct answers in 10, so normalising and
    grouping touch 3 strings, not 10."""
    raw: dict = {}
    try:
        _count_elements(raw, answers)
    except TypeError:    # an unhashable answer (a list): compare as text
        raw = {}
        _count_elements(raw, [a if a is None else str(a) for a in answers])
    memo = _MEMO
    counts: dict[str, int] = {}
    spelling: dict[str, str] = {}
    several: set[str] | None = None
    for a, n in raw.items():
        key = memo.get(a)
        if key is None:
            if a is None:
                continue
            key = normalize(a if a.__class__ is str else str(a))
        if not key:
            continue
        c = counts.get(key)
        if c is None:
            counts[key] = n
            spelling[key] = a
        else:
            counts[key] = c + n
            if several is None:
                several = set()
            several.add(key)
    return raw, counts, spelling, several


def _surface(key: str, raw: dict, spelling: dict[str, str], several: set[str] | None) -> str:
    """The most frequent raw spelling inside a group (ties: the one equal to the key, then alphabetical)."""
    if several is None or key not in several:
        a = spelling[key]
        return (a if a.__class__ is str else str(a)).strip()
    memo = _MEMO
    best, best_n = "", -1
    for a, n in raw.items():
        if a is None:
            continue
        if a.__class__ is not str:
            a = str(a)
        k = memo.get(a)
        if k is None:
            k = normalize(a)
        if k == key and (n > best_n or n == best_n and _before(a, best, key)):
            best, best_n = a, n
    return best.strip()


def _before(a: str, b: str, key: str) -> bool:
    """Tie between two spellings: the one already in normalised form, then the alphabetically first."""
    ea, eb = a.strip() == key, b.strip() == key
    return ea if ea != eb else a < b


def reduce(answers: list, policy: str = "majority",
           confidences: list | None = None) -> tuple[list[str], dict[str, int]]:
    """(target texts, votes per normalised answer); the texts are empty when every answer is blank."""
    if policy not in POLICIES:
        raise ValueError(f"unknown answer policy {policy!r}; choose one of {', '.join(POLICIES)}")
    raw, counts, spelling, several = _groups(answers)
    if not counts:
        return [], counts
    if policy == "first":
        for a in answers:
            if a is not None and normalize(str(a)):
                return [str(a).strip()], counts
    if len(counts) == 1:
        for key in counts:
            return [_surface(key, raw, spelling, several)], counts
    if policy == "majority":
        top = max(counts.values())
        tied = [k for k, n in counts.items() if n == top]
        key = tied[0] if len(tied) == 1 else min(tied)
        if several is None:
            a = spelling[key]
            if a.__class__ is str:
                return [a.strip()], counts
        return [_surface(key, raw, spelling, several)], counts
    if policy == "all":
        return [_surface(k, raw, spelling, several) for k in sorted(counts, key=lambda k: (-counts[k], k))], counts
    weight: dict[str, float] = {}          # confident
    for i, a in enumerate(answers):
        key = normalize(str(a)) if a is not None else ""
        if not key:
            continue
        conf = confidences[i] if confidences is not None and i < len(confidences) else None
        weight[key] = weight.get(key, 0.0) + CONFIDENCE_WEIGHT.get(conf, 1.0)
    key = min(weight, key=lambda k: (-weight[k], -counts[k], k))
    return [_surface(key, raw, spelling, several)], counts


def majority(answers: list) -> tuple[list[str], dict[str, int]]:
    """``reduce(answers, "majority")`` for rows whose spellings are all memoised (``reduce`` itself
    otherwise, which memoises them). Rows of answers that are their own normal form need no grouping at
    all, and rows with one spelling per group none of ``_surface``; about half the CPU of ``reduce`` on
    VQA-like rows. A test compares the two on thousands of generated lists."""
    if not answers:
        return [], {}
    raw: dict = {}
    try:
        if _FIXED.issuperset(answers):
            # Every answer is its own normal form: raw votes are the counts and each group's spelling
            # is its key.
            _count_elements(raw, answers)
            votes = list(raw.values())
            top = max(votes)
            if votes.count(top) == 1:
                return [list(raw)[votes.index(top)]], raw
            return [min([k for k, n in raw.items() if n == top])], raw
        _count_elements(raw, answers)
        counts: dict[str, int] = {}
        _count_elements(counts, map(_MEMO.__getitem__, answers))
    except (TypeError, KeyError):    # an unhashable answer, or a spelling not normalised yet
        return reduce(answers, "majority")
    if len(counts) == len(raw) and "" not in counts:
        # One spelling per group, so raw and counts share one order.
        votes = list(counts.values())
        top = max(votes)
        if votes.count(top) == 1:
            return [list(raw)[votes.index(top)].strip()], counts
        key = min([k for k, n in counts.items() if n == top])
        return [list(raw)[list(counts).index(key)].strip()], counts
    # Two spellings in one group (``two``/``2``) or a blank answer: what ``_groups`` and ``_surface`` do.
    counts.pop("", None)
    if not counts:
        return [], counts
    top = max(counts.values())
    tied = [k for k, n in counts.items() if n == top]
    key = tied[0] if len(tied) == 1 else min(tied)
    best, best_n = "", -1
    memo = _MEMO
    for a, n in raw.items():
        if memo[a] == key and (n > best_n or n == best_n and _before(a, best, key)):
            best, best_n = a, n
    return [best.strip()], counts


def choose(answers: list, policy: str = "majority", confidences: list | None = None) -> Choice:
    """Reduce annotator answers to target text(s). Empty or blank-only input gives ``Choice([], {})``."""
    texts, counts = reduce(answers, policy, confidences)
    return Choice(texts, counts)
