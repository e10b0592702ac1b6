"""`instructkit stats`: every number on a crafted file equals the value worked out by hand below."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from instructkit.cli import app
from instructkit.errors import InstructkitError
from instructkit.quality.dist import IntDist
from instructkit.quality.stats import collect_stats, format_stats
from instructkit.quality.verbs import verb_noun

runner = CliRunner()


def _row(images, turns, task, source, meta=None):
    msgs = []
    for user, assistant in turns:
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"images": images, "messages": msgs, "task": task, "source": source, "meta": meta or {}}


@pytest.fixture()
def crafted(tmp_path: Path) -> Path:
    Image.new("RGB", (64, 32), "red").save(tmp_path / "a.png")
    Image.new("RGB", (100, 50), "blue").save(tmp_path / "b.png")
    rows = [
        _row(["a.png"], [("<image>\nDescribe the image in detail.", "A red square on white.")], "detail", "s1",
             {"template_id": "t#1"}),
        _row(["b.png"], [("<image>\nDescribe the image in detail.", "Blue.")], "detail", "s1",
             {"template_id": "t#1"}),
        _row([], [("What is two plus two?", "Four."), ("Write a poem about the sea.", "The sea is wide and deep.")],
             "text", "s2"),
        _row(["a.png", "b.png"], [("<image><image>Compare the two pictures.", "They differ in color.")],
             "reasoning", "s2", {"template": "u#2"}),
    ]
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, '{"images": [], "messages": [')   # one unreadable line
    path = tmp_path / "crafted.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_stats_equal_hand_computed_values(crafted: Path):
    d = collect_stats(crafted).data
    assert d["read"] == 5 and d["rows"] == 4 and d["unreadable"] == {"bad-json": 1}
    assert d["tasks"] == {"detail": 2, "reasoning": 1, "text": 1}
    assert d["sources"] == {"s1": 2, "s2": 2}
    assert d["modality"] == {"image": 3, "text": 1}
    assert d["templates"] == {"t#1": 2, "(none)": 1, "u#2": 1}
    # turns per row [1, 1, 2, 1]: mean 1.25; nearest-rank p50 = 2nd of [1,1,1,2] = 1, p90 = 4th = 2
    t = d["turns_per_row"]
    assert (t["n"], t["min"], t["mean"], t["p50"], t["p90"], t["max"]) == (4, 1, 1.25, 1, 2, 2)
    assert t["counts"] == {"1": 3, "2": 1}
    # instruction words per turn [5, 5, 5, 6, 4] (placeholders are not words)
    i = d["instruction_words"]
    assert (i["n"], i["min"], i["mean"], i["p50"], i["p90"], i["max"]) == (5, 4, 5.0, 5, 6, 6)
    # response words [5, 1, 1, 6, 4]: mean 17/5; sorted [1,1,4,5,6] -> p50 4, p90 6
    r = d["response_words"]
    assert (r["n"], r["min"], r["mean"], r["p50"], r["p90"], r["max"]) == (5, 1, 3.4, 4, 6, 6)
    assert sum(b["count"] for b in r["histogram"]) == 5
    # 25 instruction words, 16 distinct; 20 bigrams, 16 distinct; 5 instructions, 4 distinct
    div = d["diversity"]
    assert div == {"instructions": 5, "unique_instructions": 4, "unique_instruction_ratio": 0.8,
                   "distinct_1": 0.64, "distinct_2": 0.8}
    vn = d["verb_noun"]
    assert vn["kinds"] == {"pair": 4, "question": 1, "other": 0}
    assert vn["top_pairs"] == {"describe image": 2, "compare pictures": 1, "write poem": 1}
    assert vn["top_verbs"] == {"describe": 2, "compare": 1, "write": 1}
    assert vn["question_openers"] == {"what": 1}
    img = d["images"]
    assert img["per_row"]["counts"] == {"0": 1, "1": 2, "2": 1} and img["per_row"]["mean"] == 1.0
    assert img["distinct"] == 2 and img["ok"] == 2 and img["problems"] == {}
    assert (img["width"]["min"], img["width"]["max"], img["width"]["mean"]) == (64, 100, 82.0)
    assert (img["height"]["min"], img["height"]["max"]) == (32, 50)
    assert img["formats"] == {"PNG": 2}


def test_bad_images_are_counted_not_fatal(tmp_path: Path):
    (tmp_path / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    rows = [_row(["gone.png"], [("<image>\nWhat is it?", "A cat.")], "vqa", "x"),
            _row(["cut.jpg"], [("<image>\nWhat is it?", "A dog.")], "vqa", "x"),
            _row(["gone.png"], [("<image>\nAnd now?", "Still a cat.")], "vqa", "x")]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    img = collect_stats(path).data["images"]
    # two distinct files, each counted once; three rows point at a bad one
    assert img["problems"] == {"image-missing": 1, "image-corrupt": 1}
    assert img["rows_with_bad_images"] == 3 and img["ok"] == 0


def test_percentiles_are_nearest_rank():
    d = IntDist()
    for v in range(1, 101):
        d.add(v)
    assert (d.percentile(50), d.percentile(90), d.percentile(99), d.percentile(100)) == (50, 90, 99, 100)
    d2 = IntDist()
    for v in (7, 7, 7, 1):
        d2.add(v)
    assert d2.percentile(25) == 1 and d2.percentile(26) == 7
    assert IntDist().summary()["p50"] is None


@pytest.mark.parametrize("text, expected", [
    ("Describe the image in detail.", ("pair", "describe", "image")),
    ("<image>\nPlease write a short poem about cats", ("pair", "write", "poem")),
    ("Can you list three uses of the object?", ("pair", "list", "uses")),
    ("Question: Identify the animal. Short answer:", ("pair", "identify", "animal")),
    ("Summarize", ("pair", "summarize", "-")),
    ("What is the color of the bus?", ("question", "what", "")),
    ("Is there a dog?", ("question", "is", "")),
    ("The cat sat on the mat.", ("other", "", "")),
])
def test_verb_noun_heuristic(text, expected):
    assert verb_noun(text) == expected


def test_unicode_words_count_cjk_characters(tmp_path: Path):
    row = _row([], [("描述这张图片", "一只猫。")], "text", "zh")
    path = tmp_path / "zh.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    d = collect_stats(path).data
    assert d["instruction_words"]["max"] == 6 and d["response_words"]["max"] == 3


def test_terminal_tables_and_json_cli(crafted: Path):
    result = runner.invoke(app, ["stats", str(crafted), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rows"] == 4 and data["diversity"]["distinct_2"] == 0.8
    table = format_stats(collect_stats(crafted).data)
    assert "detail" in table and "describe image" in table and "distinct-1              0.6400" in table
    result = runner.invoke(app, ["stats", str(crafted)])
    assert result.exit_code == 0 and "unique instructions     4  (ratio 0.8000)" in result.stdout


def test_empty_and_missing_files_fail_cleanly(tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InstructkitError):
        collect_stats(empty)
    result = runner.invoke(app, ["stats", str(empty)])
    assert result.exit_code == 1 and "empty" in result.stderr and str(empty) in result.stderr
    result = runner.invoke(app, ["stats", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1 and "no such file" in result.stderr


def test_reads_other_formats(tmp_path: Path):
    llava = [{"id": "1", "image": "a.png", "conversations": [
        {"from": "human", "value": "<image>\nDescribe the photo."}, {"from": "gpt", "value": "A red square."}]}]
    Image.new("RGB", (40, 30), "red").save(tmp_path / "a.png")
    path = tmp_path / "llava.json"
    path.write_text(json.dumps(llava), encoding="utf-8")
    d = collect_stats(path).data
    assert d["format"] == "llava" and d["rows"] == 1 and d["images"]["width"]["max"] == 40
    assert d["verb_noun"]["top_pairs"] == {"describe photo": 1}


def test_merged_rows_count_each_template_they_use(tmp_path: Path):
    # adapt --merge-by-image keeps one template id per merged turn in meta["templates"]
    rows = [
        _row([], [("Q1?", "a"), ("Q2?", "b"), ("Q3?", "c")], "vqa", "v",
             {"templates": ["adapt/vqa-short", "adapt/vqa-short", "adapt/vqa-long"]}),
        _row([], [("Q4?", "d")], "vqa", "v", {"templates": ["adapt/vqa-short"]}),
        _row([], [("Q5?", "e")], "vqa", "v", {"template": "self_instruct/detail"}),
        _row([], [("Q6?", "f")], "vqa", "v"),
    ]
    path = tmp_path / "merged.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    d = collect_stats(path).data
    assert d["templates"] == {"adapt/vqa-short": 2, "adapt/vqa-long": 1, "self_instruct/detail": 1,
                              "(none)": 1}
