"""The fast paths of ``adapt`` against the plain code they stand in for: same values, same bytes."""

from __future__ import annotations

import random

import orjson
import pytest

from instructkit.adapt import answers as answers_mod
from instructkit.adapt.answers import _normalize, majority, normalize, reduce
from instructkit.adapt.core import Adapter, AdaptOptions, mix, mix_block
from instructkit.adapt.job import load_family
from instructkit.adapt.sources import Bad, Item
from instructkit.errors import RowError

VOCAB = ["cat", "Cat", "a cat", "the cat ", " cat", "cats", "two", "2", "Two!", "2.", "three", "3", "yes", "Yes",
         "yes.", "no", "No!", "none", "0", "zero", "", " ", "a", "the", "dont", "don't", "1,000", "1000", "naïve café",
         "red/blue", "red blue", "it's", "its", "mr. smith", "3.5", "ten", "10", "a b", "b a"]


def _lists(rng: random.Random, n: int) -> list[list]:
    out = []
    for _ in range(n):
        pool = rng.sample(VOCAB, rng.randint(1, 6))
        row = [rng.choice(pool) for _ in range(rng.choice((2, 3, 10)))]
        if rng.random() < 0.05:
            row[rng.randrange(len(row))] = rng.choice((None, 2, 3.0))
        out.append(row)
    return out


def test_memoised_normalize_equals_the_plain_function():
    rng = random.Random(7)
    words = VOCAB + ["".join(rng.choice("ab .,-!?'\"") for _ in range(rng.randint(0, 8))) for _ in range(2000)]
    answers_mod._MEMO.clear()
    answers_mod._FIXED.clear()
    for w in words + words:          # the second pass reads the memo
        assert normalize(w) == _normalize(w)
    # the fixed-point set holds exactly the non-blank answers that are their own normal form
    assert answers_mod._FIXED == {w for w in words if w and _normalize(w) == w}


@pytest.mark.parametrize("warm", [False, True])
def test_majority_equals_reduce(warm):
    rng = random.Random(11)
    lists = _lists(rng, 3000)
    answers_mod._MEMO.clear()
    answers_mod._FIXED.clear()
    if warm:
        for w in VOCAB:
            normalize(w)
    for row in lists:
        assert majority(row) == reduce(row, "majority"), row
    assert majority([]) == reduce([], "majority") == ([], {})
    assert majority(["x", ["unhashable"]]) == reduce(["x", ["unhashable"]], "majority")


def test_majority_tie_goes_to_alphabetically_first_and_keeps_spelling():
    normalize("two")
    normalize("2")
    assert majority(["y", "x", "y", "x"]) == (["x"], {"y": 2, "x": 2})
    assert majority(["b", "a", "b", "a"]) == (["b"], {"b": 2})     # "a" is an article: blank
    # tie 3-3 goes to key "2", whose most frequent spelling is "two"
    assert majority(["two", "two", "2", "3", "3", "3"]) == (["two"], {"2": 3, "3": 3})
    assert majority(["2", "two", "2", "3", "3"]) == (["2"], {"2": 3, "3": 2})
    for row in (["y", "x", "y", "x"], ["two", "two", "2", "3", "3", "3"], ["2", "two", "2", "3", "3"]):
        assert majority(row) == reduce(row, "majority")


def test_mix_block_equals_mix():
    for seed, k in ((0, 10), (5, 7), (2**40 + 3, 12)):
        base = Adapter(load_family("vqa"), AdaptOptions(seed=seed), {"question"})._base
        for first, n in ((0, 3000), (10**6 + 17, 50), (2**40 + 5, 9), (2**57, 4)):
            assert mix_block(base, first, n, k) == [mix(base, i * 64) % k for i in range(first, first + n)]


def _items(rng: random.Random, n: int, mc: bool = False) -> list:
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.05:
            out.append(Bad(RowError("missing-question", "x", file="f", line=i + 1), {"i": i}))
            continue
        q = rng.choice(["What is it?", 'Say "hi"\\?', "naïve?\nnew line", "\u2028sep"])
        ans = rng.choice([["cat"] * 3 + ["a cat", "dog"], ["yes"], [" 2 ", "two", "2"], ["", " "], [], ["a", "the"],
                          [1, 1, "1"], ["x", "y"]])
        extra = {"image_id": i, "question_id": "override"} if rng.random() < 0.1 else None
        sid = None if rng.random() < 0.2 else rng.choice([i, f"q{i}", 2.5])
        choices = correct = None
        if mc:
            choices = ["red", "blue", "green"][: rng.choice((2, 3))]
            correct = rng.randrange(len(choices)) if rng.random() < 0.9 else None
        out.append(Item("f.jsonl", i + 1, f"img/{i % 7}.jpg", q, ans, ["yes", "maybe", "no"][: len(ans)],
                        choices=choices, correct=correct, ocr=["A", "B"], sid=sid, extra=extra))
    return out


def _bad(b: Bad) -> tuple:
    return "bad", b.error.reason, str(b.error), b.data


def _both(family: str, options: AdaptOptions, items: list, variables: set[str], start: int = 0):
    fam = load_family(family)
    plain = Adapter(fam, options, variables)
    want = []
    for rec in plain.run(items, start):
        want.append(_bad(rec) if rec.__class__ is Bad else orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
    fast = Adapter(fam, options, variables)
    got, lines = [], 0
    for rec in fast.run_lines(items, start, block=7):
        if rec.__class__ is Bad:
            got.append(_bad(rec))
        else:
            chunk, n = rec
            assert chunk.count(b"\n") == n
            lines += n
            got.extend(line + b"\n" for line in chunk.split(b"\n")[:-1])
    assert got == want
    assert lines == plain.stats.produced == fast.stats.produced
    assert (plain.stats.read, plain.stats.rejected, plain.stats.templates) == \
        (fast.stats.read, fast.stats.rejected, fast.stats.templates)
    return want


@pytest.mark.parametrize("family,variables", [("vqa", {"question"}), ("vqa-short", {"question"}),
                                              ("caption", {"question"}), ("ocr", {"question", "ocr_tokens"})])
@pytest.mark.parametrize("strategy", ["random", "cycle", "all"])
@pytest.mark.parametrize("policy", ["majority", "first", "all", "confident"])
def test_run_lines_bytes_equal_run_dicts(family, variables, strategy, policy):
    items = _items(random.Random(f"{family}-{strategy}-{policy}"), 120)
    want = _both(family, AdaptOptions(strategy=strategy, answers=policy, seed=3, source="s\"rc", task="vqa"),
                 items, variables, start=5)
    assert sum(1 for w in want if w.__class__ is bytes) > 50


def test_run_lines_multiple_choice_and_shards():
    items = _items(random.Random(3), 80, mc=True)
    _both("vqa-mc", AdaptOptions(mc_repeat=True, seed=1, source="x", task="vqa-mc"), items, {"question", "options"})
    items = _items(random.Random(4), 80)
    _both("vqa", AdaptOptions(shard=(1, 3), seed=2, source="x"), items, {"question"})


def test_run_lines_across_pick_blocks():
    # 2,500 items from position 1,000 cross two 1,024-item blocks of precomputed random picks
    items = [Item("f.jsonl", i + 1, f"img/{i}.jpg", f"Q{i}?", ["yes", "no", "yes"], sid=i) for i in range(2500)]
    want = _both("vqa", AdaptOptions(seed=9, source="x"), items, {"question"}, start=1000)
    assert len(want) == 2500
