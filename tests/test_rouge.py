"""ROUGE-L near-duplicate detection: exact against an independent LCS and against rouge_score."""

import random
from fractions import Fraction

import pytest
from rouge_score import rouge_scorer

from instructkit.quality.rouge import RougeIndex, rouge_l_f1, tokenize


def lcs_len(a, b):
    # Textbook dynamic programme, independent of rapidfuzz.
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def reference_f1(a, b):
    ta, tb = tokenize(a), tokenize(b)
    if not ta or not tb:
        return Fraction(0)
    return Fraction(2 * lcs_len(ta, tb), len(ta) + len(tb))


WORDS = "write a short poem about the sea sky and list three facts on cats dogs explain why water boils".split()


def sentences(n, seed):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))) for _ in range(n)]


def test_equals_rouge_score_on_ascii():
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    texts = sentences(60, 1) + ["Don't panic: it's 42!", "", "C3PO & R2-D2 (droids)"]
    for a in texts:
        for b in texts[:20]:
            assert rouge_l_f1(a, b) == pytest.approx(scorer.score(a, b)["rougeL"].fmeasure, abs=1e-12)


def test_unicode_tokens():
    assert tokenize("两个相同的字符串") == ["两", "个", "相", "同", "的", "字", "符", "串"]
    assert rouge_l_f1("两个相同的中文字符串", "两个相同的中文字符串") == 1.0
    assert 0.8 < rouge_l_f1("两个相同的中文字符串", "两个相似的中文字符串") < 1.0
    assert tokenize("Café ÜBER naïve") == ["café", "über", "naïve"]
    assert tokenize("हिन्दी भाषा") == ["हिन्दी", "भाषा"]        # vowel signs stay inside the word
    assert tokenize("ＡＢＣ１２") == ["abc12"]                      # full-width folded by NFKC
    assert tokenize("snake_case-word") == ["snake", "case", "word"]


def test_threshold_is_exact_at_the_boundary():
    # 7 shared tokens of 10 + 10: F1 is exactly 0.7, which is not below 0.7.
    a = "a b c d e f g h i j"
    b = "a b c d e f g x y z"
    assert reference_f1(a, b) == Fraction(7, 10)
    idx = RougeIndex(0.7, [a])
    assert not idx.is_novel(b)
    c = "a b c d e f x y z w"          # 6 of 10: 0.6
    assert idx.is_novel(c)
    assert idx.max_score(b) == pytest.approx(0.7)


def test_filter_batch_matches_one_at_a_time():
    base = sentences(150, 2)
    # Plant near-duplicates of earlier entries.
    rng = random.Random(3)
    cands = []
    for s in sentences(250, 4):
        cands.append(s)
        if rng.random() < 0.3:
            w = s.split()
            if w:
                w[rng.randrange(len(w))] = rng.choice(WORDS)
            cands.append(" ".join(w))
    idx = RougeIndex(0.7, base)
    got = idx.filter_batch(cands)
    pool = list(base)
    want = []
    for c in cands:
        ok = all(reference_f1(c, p) < Fraction(7, 10) for p in pool)
        want.append(ok)
        if ok:
            pool.append(c)
    assert got == want
    assert 0 < sum(got) < len(cands)
    assert len(idx) == len(pool)


def test_chunks_do_not_change_decisions(monkeypatch):
    import instructkit.quality.rouge as rouge

    cands = sentences(300, 5) * 2
    a = RougeIndex(0.7).filter_batch(cands)
    monkeypatch.setattr(rouge, "_CHUNK", 7)
    b = RougeIndex(0.7).filter_batch(cands)
    assert a == b
    assert sum(a) < 300          # the second copy is all duplicates


def test_scores_and_most_similar():
    idx = RougeIndex(0.7, ["write a poem about the sea", "list three facts about cats"])
    score, text = idx.most_similar("write a poem about the blue sea")
    assert text == "write a poem about the sea"
    assert score == pytest.approx(float(reference_f1("write a poem about the blue sea", text)))
    assert RougeIndex(0.7).max_score("anything") == 0.0
    with pytest.raises(ValueError):
        RougeIndex(0)
