"""`instructkit filter`: every filter drops its planted rows and keeps the clean ones; the funnel adds up."""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from instructkit.cli import app
from instructkit.errors import InstructkitError, UsageError
from instructkit.quality.filters import FilterConfig, filter_job, side_paths
from instructkit.quality.phash import HashIndex, dhash, hamming, phash

runner = CliRunner()


def blocks(path: Path, seed: int, size: tuple[int, int] = (96, 96)) -> Path:
    """An image of random grey blocks: photos differ in structure, which is what perceptual hashes see
    (solid colours all hash alike)."""
    rng = random.Random(seed)
    small = Image.new("L", (8, 8))
    small.putdata([rng.randrange(256) for _ in range(64)])
    small.resize(size, Image.Resampling.NEAREST).convert("RGB").save(path)
    return path


def row(rid, user, assistant, images=(), **kw):
    return {"id": rid, "images": list(images), "messages": [{"role": "user", "content": user},
                                                            {"role": "assistant", "content": assistant}], **kw}


@pytest.fixture()
def planted(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A file of clean rows and planted bad ones; returns it and {row id: expected reason or 'keep'}."""
    img = tmp_path / "img"
    img.mkdir()
    for i in range(6):
        blocks(img / f"c{i}.png", seed=i)
    shutil.copy(img / "c0.png", img / "c0_copy.png")          # same bytes, other name
    near = Image.open(img / "c1.png").resize((90, 90), Image.Resampling.BILINEAR)
    near.save(img / "c1_near.jpg", quality=90)                # re-encoded, resized: pHash within 4 bits
    blocks(img / "tiny.png", seed=7, size=(12, 12))
    blocks(img / "wide.png", seed=8, size=(400, 40))
    buf = io.BytesIO()
    Image.open(img / "c2.png").save(buf, "JPEG")
    (img / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (img / "junk.png").write_bytes(b"not an image at all")

    q = "<image>\n"
    expect = {}
    rows = []

    def add(reason, r):
        rows.append(r)
        expect[r["id"]] = reason

    add("keep", row("k0", q + "What color is the car in this picture?", "The car is red.", ["img/c0.png"]))
    add("keep", row("k1", q + "Describe the scene.", "A street with two cars.", ["img/c1.png"]))
    add("keep", row("k2", q + "What color is the car in this picture?", "It is blue.", ["img/c2.png"]))
    add("keep", row("k3", q + "How many people are there?", "Three people.", ["img/c0.png"]))
    add("keep", row("k4", "Write a short poem about the sea at night.", "Dark waves hum below."))
    add("keep", row("k5", "Explain how a rainbow forms.", "Sunlight refracts in raindrops and splits."))
    add("keep", row("k6", q + q + "Compare the two images.", "The first is darker than the second.",
                    ["img/c3.png", "img/c4.png"]))
    add("keep", row("k7", "Is the library open today?", "It says the library opens at nine."))
    add("too-short", row("s1", "Name the capital of France.", "Paris."))
    add("too-long", row("s2", "Tell me a story.", " ".join(["word"] * 60)))
    add("refusal", row("r1", q + "What is on the table?", "As an AI language model, I cannot see images.",
                       ["img/c5.png"]))
    add("refusal", row("r2", "Summarize the photo.", "I'm sorry, but I cannot view the image you sent."))
    add("leak", row("l1", "Where is the dog?", "The dog is at [0.12, 0.34, 0.56, 0.78] in the picture."))
    add("leak", row("l2", "What does it show?", "According to the caption, two people are talking."))
    add("image-missing", row("m1", q + "What is this?", "A bird on a wire.", ["img/nope.png"]))
    add("image-corrupt", row("m2", q + "What is this?", "A small boat.", ["img/cut.jpg"]))
    add("image-corrupt", row("m3", q + "What is this?", "A green field.", ["img/junk.png"]))
    add("image-too-small", row("m4", q + "What is this?", "A tiny icon.", ["img/tiny.png"]))
    add("image-extreme-aspect", row("m5", q + "What is this?", "A long banner.", ["img/wide.png"]))
    add("duplicate", row("d1", q + "what color is   the car in this PICTURE?", "The car is red.", ["img/c0.png"]))
    add("duplicate", row("d2", q + "What color is the car in this picture?", "The car is red.",
                         ["img/c0_copy.png"]))
    add("near-duplicate-text", row("n1", "Write a short poem about the sea at dawn.", "Light on the water."))
    add("near-duplicate-text", row("n2", q + "What colour is the car in the picture?", "Red, shiny.",
                                   ["img/c0.png"]))
    add("near-duplicate-image", row("p1", q + "What time of day is it?", "Evening, judging by the light.",
                                    ["img/c1_near.jpg"]))
    add("keep", row("k8", q + "What time of day is it?", "Around noon.", ["img/c0_copy.png"]))
    lines = [json.dumps(r) for r in rows]
    lines.insert(3, "{not json")
    lines.insert(5, json.dumps(row("u2", "no placeholder", "but an image", ["img/c0.png"])))
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, expect


CONFIG = FilterConfig(min_response_words=2, max_response_words=50)


def test_each_filter_drops_its_planted_rows_and_keeps_clean_ones(planted, tmp_path):
    data, expect = planted
    out = tmp_path / "clean.jsonl"
    funnel = filter_job(data, out, config=CONFIG)
    kept = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert kept == [rid for rid, why in expect.items() if why == "keep"]
    rejects = [json.loads(line) for line in side_paths(out)[0].read_text().splitlines()]
    # filter drops name the input row; reader rejects (unparseable rows) the line
    dropped_ids = {r["data"]["id"]: r["reason"] for r in rejects if r["line"] is None}
    assert dropped_ids == {rid: why for rid, why in expect.items() if why != "keep"}
    assert sorted((r["reason"], r["line"]) for r in rejects if r["line"] is not None) == [
        ("bad-json", 4), ("image-count", 6)]
    assert all(r["file"] == str(data) and r["error"] for r in rejects)

    expected_counts = {}
    for why in expect.values():
        if why != "keep":
            expected_counts[why] = expected_counts.get(why, 0) + 1
    assert {k: v for k, v in funnel["dropped"].items() if v} == expected_counts
    assert funnel["unreadable"] == {"bad-json": 1, "image-count": 1}
    assert funnel["read"] == len(expect) + 2
    assert funnel["read"] == sum(funnel["unreadable"].values()) + sum(funnel["dropped"].values()) + funnel["kept"]
    assert json.loads(side_paths(out)[1].read_text()) == funnel


def test_rows_name_where_they_came_from(planted, tmp_path):
    data, _ = planted
    out = tmp_path / "o.jsonl"
    filter_job(data, out, config=CONFIG)
    rejects = {r["data"]["id"]: r for r in map(json.loads, side_paths(out)[0].read_text().splitlines())
               if r["line"] is None}
    # s1 is the 9th record but the 11th line (two unreadable lines come first)
    assert rejects["s1"]["row"] == 11
    assert "k0" not in rejects and "input row 1" in rejects["d1"]["error"]
    assert "c1.png" in rejects["p1"]["error"] and "pHash distance" in rejects["p1"]["error"]


def test_filters_can_be_turned_off(planted, tmp_path):
    data, expect = planted
    cfg = FilterConfig(min_response_words=0, refusals=False, leaks=False, dedup=False, rouge_threshold=None,
                       check_images=False, phash_distance=None)
    funnel = filter_job(data, tmp_path / "all.jsonl", config=cfg)
    assert funnel["kept"] == len(expect) and sum(funnel["dropped"].values()) == 0


def test_cli_prints_and_saves_the_funnel(planted, tmp_path):
    data, expect = planted
    out = tmp_path / "cli" / "kept.json"
    result = runner.invoke(app, ["filter", str(data), "-o", str(out), "--to", "sharegpt", "--min-response-words",
                                 "2", "--max-response-words", "50", "--leak-pattern", r"\bthree\b"])
    assert result.exit_code == 0, result.output
    kept = json.loads(out.read_text())
    # the extra leak pattern also drops k3 ("Three people.")
    assert len(kept) == sum(why == "keep" for why in expect.values()) - 1
    funnel = json.loads((tmp_path / "cli" / "kept.funnel.json").read_text())
    assert funnel["dropped"]["leak"] == 3 and funnel["kept"] == len(kept)
    assert "read" in result.stderr and "near-duplicate-image" in result.stderr and "kept" in result.stderr


def test_empty_file_and_bad_options(tmp_path):
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(InstructkitError, match="empty"):
        filter_job(empty, tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()
    result = runner.invoke(app, ["filter", str(empty), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 1 and "empty" in result.stderr
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(row("a", "Hi there.", "Hello to you.")) + "\n")
    with pytest.raises(UsageError, match="regex"):
        filter_job(data, tmp_path / "o.jsonl", config=FilterConfig(extra_leak_patterns=["(unclosed"]))
    with pytest.raises(UsageError, match="below"):
        filter_job(data, tmp_path / "o.jsonl", config=FilterConfig(min_response_words=5, max_response_words=2))
    with pytest.raises(UsageError, match="different"):
        filter_job(data, data)


def test_perceptual_hashes_see_structure_not_bytes(tmp_path):
    a = blocks(tmp_path / "a.png", 1, (128, 128))
    Image.open(a).resize((100, 100), Image.Resampling.LANCZOS).save(tmp_path / "a.jpg", quality=70)
    others = [blocks(tmp_path / f"o{i}.png", 100 + i) for i in range(8)]
    for fn in (phash, dhash):
        assert hamming(fn(a), fn(tmp_path / "a.jpg")) <= 4
        assert min(hamming(fn(a), fn(o)) for o in others) > 10


def test_hash_index_agrees_with_brute_force():
    rng = random.Random(0)
    stored = [rng.getrandbits(64) for _ in range(2000)]
    index = HashIndex(max_distance=5)
    for i, h in enumerate(stored):
        index.add(h, i)
    queries = [rng.getrandbits(64) for _ in range(200)]
    for h in stored[:200]:          # near copies: flip up to 7 bits
        for b in rng.sample(range(64), rng.randrange(8)):
            h ^= 1 << b
        queries.append(h)
    for q in queries:
        best = min(range(len(stored)), key=lambda i: hamming(stored[i], q))
        d = hamming(stored[best], q)
        hit = index.nearest(q)
        if d <= 5:
            assert hit is not None and hit[1] == d
        else:
            assert hit is None


def test_per_image_near_duplicates_decide_as_rouge_index(tmp_path):
    from instructkit.quality.filters import RowFilter, _Drop
    from instructkit.quality.rouge import RougeIndex

    rng = random.Random(5)
    vocab = "the a cat dog red blue car tree is on in what where how many color sits".split()
    texts = []
    for _ in range(300):
        if texts and rng.random() < 0.4:
            toks = rng.choice(texts).split()
            toks[rng.randrange(len(toks))] = rng.choice(vocab)
        else:
            toks = [rng.choice(vocab) for _ in range(rng.randint(3, 9))]
        texts.append(" ".join(toks))
    rows = RowFilter(FilterConfig(rouge_threshold=0.7), None)
    reference = RougeIndex(0.7)
    decisions, expected = [], []
    for t in texts:
        try:
            rows._near_text([t], (b"same-image",))
            decisions.append(True)
        except _Drop:
            decisions.append(False)
        novel = reference.is_novel(t)
        expected.append(novel)
        if novel:
            reference.add(t)
    assert decisions == expected and 20 < expected.count(False) < 280


@pytest.mark.parametrize("text, refusal, leak", [
    ("As an AI, I can't see pictures.", True, False),
    ("I'm unable to view the image you provided.", True, False),
    ("Sorry, no image was provided.", True, False),
    ("I do not have access to the photo.", True, False),
    ("Based on the given captions, a man is surfing.", False, True),
    ("The bounding boxes show three cars.", False, True),
    ("The cup is at [0.21, 0.40, 0.55, 0.93].", False, True),
    ("Question: what is it?\n===\nAnswer: a cat", False, True),
    ("A {question} remains here.", False, True),
    ("I cannot believe how blue the sky is in this image.", False, False),
    ("The caption under the photo reads 'Welcome'.", False, False),
    ("Use GPS coordinates to find the trailhead.", False, False),
    ("A dictionary maps keys to values: {'a': 1}.", False, False),
])
def test_default_patterns(text, refusal, leak):
    from instructkit.quality.patterns import LEAK_PATTERNS, REFUSAL_PATTERNS, compile_patterns

    assert bool(compile_patterns(REFUSAL_PATTERNS).search(text)) is refusal
    assert bool(compile_patterns(LEAK_PATTERNS).search(text)) is leak


def test_windowed_text_decisions_equal_one_at_a_time(tmp_path, monkeypatch):
    import instructkit.quality.filters as filters
    from instructkit.quality.rouge import RougeIndex

    monkeypatch.setattr(filters, "_WINDOW", 7)
    rng = random.Random(11)
    vocab = "write explain list the a poem story sea river city night day cold warm old new".split()
    texts: list[str] = []
    for _ in range(300):
        if texts and rng.random() < 0.3:
            toks = rng.choice(texts).split()
            toks[rng.randrange(len(toks))] = rng.choice(vocab)
        else:
            toks = [rng.choice(vocab) for _ in range(rng.randint(4, 10))]
        texts.append(" ".join(toks))
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(row(f"r{i}", t, "Some answer here.")) + "\n" for i, t in enumerate(texts)))
    filter_job(data, tmp_path / "o.jsonl", config=FilterConfig())
    kept = [json.loads(line)["id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    index, expected = RougeIndex(0.7), []
    for i, t in enumerate(texts):
        if index.is_novel(t):
            index.add(t)
            expected.append(f"r{i}")
    assert kept == expected and 50 < len(expected) < 290
