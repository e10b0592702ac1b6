"""run_adapt end to end: sample data to LLaVA JSON that validates, strategies, merge, MC, bad input, CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from adapt_helpers import jpeg, jsonl, vqav2_pair

from instructkit.adapt import run_adapt
from instructkit.errors import RowError, TemplateError, UsageError
from instructkit.formats import RecordWriter, read_records
from instructkit.records import Record, make_record
from instructkit.resources import seeds_dir
from instructkit.templates import TemplateEngine

QUIET = {"progress": False, "log": lambda m: None}


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _generic(tmp: Path, n: int, images: int = 5, answers: list[str] | None = None) -> tuple[Path, Path]:
    root = tmp / "img"
    for i in range(images):
        jpeg(root / f"{i}.jpg")
    rows = [{"image": f"{i % images}.jpg", "question": f"Question number {i}?",
             "answers": answers or ["cat"] * 7 + ["dog"] * 3, "qid": i} for i in range(n)]
    return jsonl(tmp / "in.jsonl", rows), root


def test_bundled_sample_to_llava_json_passes_validate(tmp_path):
    from instructkit.quality.validate import validate_file

    seeds = seeds_dir()
    out = tmp_path / "sample.json"
    funnel = run_adapt(seeds / "vqa" / "questions.json", out, annotations=seeds / "vqa" / "annotations.json",
                       image_root=seeds / "images", **QUIET)
    assert funnel["reader"] == "vqav2" and funnel["format"] == "llava"
    n_questions = len(json.loads((seeds / "vqa" / "questions.json").read_text())["questions"])
    assert funnel["read"] == funnel["written"] == n_questions and funnel["rejected"] == {}
    rows = json.loads(out.read_text())
    assert len(rows) == n_questions and all(r["conversations"][0]["from"] == "human" for r in rows)
    report = validate_file(out, image_root=seeds / "images", check_images=True)
    assert report.ok, report.render()
    # the sample's captions too (caption templates)
    cap = tmp_path / "captions.json"
    run_adapt(seeds / "coco" / "captions.json", cap, image_root=seeds / "images", **QUIET)
    assert validate_file(cap, image_root=seeds / "images").ok


def test_vqav2_pair_to_llava_json_validates(tmp_path):
    from instructkit.quality.validate import validate_file

    q, a, root = vqav2_pair(tmp_path, [(1, 1, "What is it?"), (2, 2, "How many?")],
                            {1: ["cat"] * 10, 2: ["two"] * 6 + ["3"] * 4})
    out = tmp_path / "out.json"
    run_adapt(q, out, annotations=a, image_root=root, **QUIET)
    rows = json.loads(out.read_text())
    assert [r["image"] for r in rows] == ["COCO_val2014_000000000001.jpg", "COCO_val2014_000000000002.jpg"]
    assert [r["conversations"][1]["value"] for r in rows] == ["cat", "two"]
    assert rows[1]["meta"]["answer_counts"] == {"2": 6, "3": 4} and rows[1]["meta"]["answer_policy"] == "majority"
    assert validate_file(out, image_root=root).ok


def test_strategy_all_gives_ten_rows_per_question_with_every_template_verbatim(tmp_path):
    inp, root = _generic(tmp_path, 7)
    out = tmp_path / "all.jsonl"
    funnel = run_adapt(inp, out, image_root=root, strategy="all", **QUIET)
    rows = _lines(out)
    assert len(rows) == 70 == funnel["written"]
    entries = TemplateEngine().family("adapt/vqa").entries
    for i in range(7):
        mine = rows[i * 10:(i + 1) * 10]
        q = f"Question number {i}?"
        assert [r["messages"][0]["content"] for r in mine] == [e.render(question=q) for e in entries]
        assert [r["meta"]["template"] for r in mine] == [f"adapt/vqa#{k}" for k in range(1, 11)]
    assert set(funnel["template_histogram"].values()) == {7}


def test_random_is_reproducible_and_uniform(tmp_path):
    n = 3000
    inp, root = _generic(tmp_path, n)
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    run_adapt(inp, a, image_root=root, strategy="random", seed=1, **QUIET)
    run_adapt(inp, b, image_root=root, strategy="random", seed=1, **QUIET)
    run_adapt(inp, c, image_root=root, strategy="random", seed=2, **QUIET)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    hist = Counter(r["meta"]["template"] for r in _lines(a))
    assert len(hist) == 10
    expected = n / 10
    chi2 = sum((hist[f"adapt/vqa#{k}"] - expected) ** 2 / expected for k in range(1, 11))
    # 9 degrees of freedom: P(chi2 > 27.88) = 0.001 under uniformity.
    assert chi2 < 27.88, hist


def test_cycle_and_shards_match_the_unsharded_run(tmp_path):
    inp, root = _generic(tmp_path, 20)
    full = tmp_path / "full.jsonl"
    run_adapt(inp, full, image_root=root, strategy="cycle", **QUIET)
    assert [r["meta"]["template"] for r in _lines(full)][:11] == [f"adapt/vqa#{k % 10 + 1}" for k in range(11)]
    run_adapt(inp, full, image_root=root, strategy="random", seed=3, **QUIET)
    parts = []
    for k in range(3):
        p = tmp_path / f"s{k}.jsonl"
        run_adapt(inp, p, image_root=root, strategy="random", seed=3, shard=f"{k}/3", **QUIET)
        parts.append(_lines(p))
    merged = [row for i in range(20) for row in [parts[i % 3][i // 3]]]
    assert merged == _lines(full)


def test_fast_canonical_writes_the_bytes_recordwriter_writes(tmp_path):
    inp, root = _generic(tmp_path, 30, answers=["naïve café", "naïve café", "x"])
    out = tmp_path / "fast.jsonl"
    run_adapt(inp, out, image_root=root, answers="all", **QUIET)
    raw = _lines(out)
    assert len(raw) == 60
    slow = tmp_path / "slow.jsonl"
    with RecordWriter(slow) as w:
        for r in raw:
            rec = make_record(r)
            assert rec.id == r["id"]          # our id is records.content_id
            w.write(rec)
    assert slow.read_bytes() == out.read_bytes()
    assert sum(1 for _ in read_records(out)) == 60


def test_merge_by_image_turns_match_questions_per_image(tmp_path):
    qs = [(1, 1, "A?"), (2, 2, "B?"), (3, 1, "C?"), (4, 3, "D?"), (5, 1, "E?"), (6, 2, "F?"), (7, 1, "G?")]
    q, a, root = vqav2_pair(tmp_path, qs, {qid: [f"ans{qid}"] * 10 for qid, _, _ in qs})
    out = tmp_path / "merged.jsonl"
    run_adapt(q, out, annotations=a, image_root=root, merge_by_image=True, **QUIET)
    rows = _lines(out)
    per_image = Counter(f"COCO_val2014_{i:012d}.jpg" for _, i, _ in qs)
    assert {r["images"][0]: len(r["messages"]) // 2 for r in rows} == per_image
    first = next(r for r in rows if r["images"][0].endswith("1.jpg"))
    assert first["meta"]["question_ids"] == [1, 3, 5, 7]                   # source order kept
    users = [m["content"] for m in first["messages"] if m["role"] == "user"]
    assert users[0].count("<image>") == 1 and all("<image>" not in u for u in users[1:])
    for r in rows:
        Record.model_validate(r)
    # --max-turns splits; --shuffle-turns reorders by seed, reproducibly
    run_adapt(q, out, annotations=a, image_root=root, merge_by_image=True, max_turns=3, shuffle_turns=True,
              seed=5, **QUIET)
    rows = _lines(out)
    img1 = [r for r in rows if r["images"][0].endswith("1.jpg")]
    assert [r["meta"]["turns"] for r in img1] == [3, 1] and [r["meta"]["part"] for r in img1] == [1, 2]
    assert sorted(qid for r in img1 for qid in r["meta"]["question_ids"]) == [1, 3, 5, 7]
    assert all(r["messages"][0]["content"].count("<image>") == 1 for r in rows)


def test_multiple_choice_shuffle_and_repeat(tmp_path):
    root = tmp_path / "img"
    jpeg(root / "a.jpg")
    inp = jsonl(tmp_path / "mc.jsonl", [{"image": "a.jpg", "question": "Which fruit?",
                                         "choices": ["apple", "pear", "plum", "fig"], "answer": "plum"}])
    out = tmp_path / "mc.jsonl.out.jsonl"
    run_adapt(inp, out, image_root=root, choices_col="choices", answer_col="answer", mc_repeat=True, seed=4,
              **QUIET)
    rows = _lines(out)
    assert len(rows) == 4 and {r["task"] for r in rows} == {"vqa-mc"}
    orders = [r["meta"]["choices"] for r in rows]
    assert orders[1] == orders[0][1:] + orders[0][:1]                        # rotations of one order
    assert sorted(orders[0]) == ["apple", "fig", "pear", "plum"]
    for r in rows:
        letter = r["messages"][1]["content"]
        options = dict(line.split(". ", 1) for line in r["messages"][0]["content"].split("\n")[2:-1])
        assert options[letter] == "plum" == r["meta"]["answer_text"]
    assert sorted(r["messages"][1]["content"] for r in rows) == ["A", "B", "C", "D"]
    again = tmp_path / "again.jsonl"
    run_adapt(inp, again, image_root=root, choices_col="choices", answer_col="answer", mc_repeat=True, seed=4,
              **QUIET)
    assert again.read_bytes() == out.read_bytes()


def test_missing_image_fails_naming_file_and_line_or_is_rejected(tmp_path):
    inp, root = _generic(tmp_path, 4, images=3)     # row 4 (line 4) points at 0.jpg... make one missing:
    rows = _lines(inp)
    rows[2]["image"] = "gone.jpg"
    rows[3]["question"] = " "
    jsonl(inp, rows)
    out = tmp_path / "o.jsonl"
    with pytest.raises(RowError, match=r"in.jsonl:3: image file .*gone.jpg.* does not exist \[image-missing\]"):
        run_adapt(inp, out, image_root=root, **QUIET)
    assert not out.exists()
    funnel = run_adapt(inp, out, image_root=root, on_error="skip", **QUIET)
    assert funnel["written"] == 2 and funnel["rejected"] == {"image-missing": 1, "missing-question": 1}
    rejects = _lines(Path(funnel["rejects_file"]))
    assert sorted((r["reason"], r["line"]) for r in rejects) == [("image-missing", 3), ("missing-question", 4)]


def test_unknown_template_variable_fails_before_any_row(tmp_path):
    inp, root = _generic(tmp_path, 3)
    bad = tmp_path / "mine.jinja"
    bad.write_text("<image> {{ question }} about {{ topic }}")
    out = tmp_path / "o.jsonl"
    with pytest.raises(TemplateError, match="unknown variable.*topic"):
        run_adapt(inp, out, image_root=root, templates=str(bad), **QUIET)
    assert not out.exists()
    # a user folder of templates works, and <image> is added in front when a template has none
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "one.jinja").write_text("Tell me: {{ question }}")
    run_adapt(inp, out, image_root=root, templates=str(folder), **QUIET)
    assert _lines(out)[0]["messages"][0]["content"] == "<image>\nTell me: Question number 0?"


def test_option_conflicts_are_usage_errors(tmp_path):
    inp, root = _generic(tmp_path, 2)
    out = tmp_path / "o.jsonl"
    with pytest.raises(UsageError, match="--merge-by-image"):
        run_adapt(inp, out, image_root=root, merge_by_image=True, strategy="all", **QUIET)
    with pytest.raises(UsageError, match="--strategy"):
        run_adapt(inp, out, image_root=root, strategy="shuffle", **QUIET)
    with pytest.raises(UsageError, match="--shard"):
        run_adapt(inp, out, image_root=root, shard="3/2", **QUIET)


def test_limit_and_answer_policies(tmp_path):
    inp, root = _generic(tmp_path, 10, answers=["a cat", "cat", "dog", "dog", "bird", "cat"])
    out = tmp_path / "o.jsonl"
    funnel = run_adapt(inp, out, image_root=root, limit=4, answers="all", **QUIET)
    rows = _lines(out)
    assert funnel["read"] == 4 and len(rows) == 12
    assert [r["messages"][1]["content"] for r in rows[:3]] == ["cat", "dog", "bird"]
    assert rows[0]["meta"]["answer_counts"] == {"cat": 3, "dog": 2, "bird": 1}
    run_adapt(inp, out, image_root=root, limit=1, answers="first", **QUIET)
    assert _lines(out)[0]["messages"][1]["content"] == "a cat"


def test_cli_runs_the_job(tmp_path):
    from typer.testing import CliRunner

    from instructkit.cli import app

    q, a, root = vqav2_pair(tmp_path, [(1, 1, "What is it?")], {1: ["cat"] * 10})
    out = tmp_path / "cli.json"
    res = CliRunner().invoke(app, ["adapt", str(q), "--annotations", str(a), "--image-root", str(root), "-o",
                                   str(out), "--templates", "vqa-short", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())[0]["conversations"][0]["value"] == (
        "<image>\nWhat is it?\nAnswer the question using a single word or phrase.")
    res = CliRunner().invoke(app, ["adapt", str(q), "-o", str(out), "--no-progress"])
    assert res.exit_code == 1 and "--annotations" in res.output


def test_num_proc_output_is_byte_identical_to_one_process(tmp_path, monkeypatch):
    from instructkit.adapt import parallel

    monkeypatch.setattr(parallel, "STEP", 7)     # slices of a small file
    inp, root = _generic(tmp_path, 100, answers=["cat", "cat", "dog"])
    rows = _lines(inp)
    rows[61]["question"] = ""
    text = "".join(json.dumps(r) + "\n" + ("\n" if i == 30 else "") for i, r in enumerate(rows))
    inp.write_text(text + "{not json\n")
    one, many = tmp_path / "one.jsonl", tmp_path / "many.jsonl"
    f1 = run_adapt(inp, one, image_root=root, seed=9, on_error="skip", strategy="all", **QUIET)
    f3 = run_adapt(inp, many, image_root=root, seed=9, on_error="skip", strategy="all", num_proc=3, **QUIET)
    assert one.read_bytes() == many.read_bytes()
    assert f3["num_proc"] == 3 and f3["written"] == f1["written"] == 990
    assert f3["rejected"] == f1["rejected"] == {"bad-json": 1, "missing-question": 1}
    assert Path(f3["rejects_file"]).read_bytes() == Path(f1["rejects_file"]).read_bytes()
    with pytest.raises(RowError, match=r"in.jsonl:63: column 'question' is missing or empty"):
        run_adapt(inp, many, image_root=root, num_proc=3, **QUIET)
    with pytest.raises(UsageError, match="--num-proc"):
        run_adapt(inp, tmp_path / "x.json", image_root=root, num_proc=2, **QUIET)


def test_each_reader_end_to_end_with_its_default_family(tmp_path):
    root = tmp_path / "img"
    for name in ("000000000009.jpg", "abc.jpg", "n1.jpg"):
        jpeg(root / name)
    aok = tmp_path / "aokvqa.json"
    aok.write_text(json.dumps([{"question_id": "q1", "image_id": 9, "question": "Why is it wet?",
                                "choices": ["rain", "sun", "snow"], "correct_choice_idx": 0,
                                "direct_answers": ["rain"] * 10, "rationales": ["It rained."]}]))
    tvqa = tmp_path / "textvqa.json"
    tvqa.write_text(json.dumps({"data": [{"question_id": 5, "image_id": "abc", "question": "What brand?",
                                          "answers": ["nike"] * 9 + ["adidas"], "ocr_tokens": ["nike"]}]}))
    gqa = tmp_path / "gqa.json"
    gqa.write_text(json.dumps({"7": {"imageId": "n1", "question": "Is it blue?", "answer": "no",
                                     "fullAnswer": "No, it is red."}}))
    out = tmp_path / "o.jsonl"
    f = run_adapt(aok, out, image_root=root, **QUIET)
    row = _lines(out)[0]
    assert (f["reader"], row["task"], row["meta"]["answer_text"]) == ("aokvqa", "vqa-mc", "rain")
    assert row["meta"]["rationales"] == ["It rained."]
    assert row["messages"][1]["content"] == "ABC"[row["meta"]["choices"].index("rain")]
    f = run_adapt(tvqa, out, image_root=root, **QUIET)
    row = _lines(out)[0]
    assert (f["reader"], row["task"], row["messages"][1]["content"]) == ("textvqa", "ocr", "nike")
    assert "nike" in row["messages"][0]["content"].split("\n")[1]
    f = run_adapt(gqa, out, image_root=root, templates="vqa-short", **QUIET)
    row = _lines(out)[0]
    assert (f["reader"], row["messages"][1]["content"], row["meta"]["full_answer"]) == ("gqa", "no",
                                                                                        "No, it is red.")
    with pytest.raises(UsageError, match="no questions"):
        run_adapt(_captions(tmp_path), out, image_root=root, rewrite=True,
                  llm_config=object(), **QUIET)


def _captions(tmp: Path) -> Path:
    p = tmp / "captions.json"
    p.write_text(json.dumps({"images": [{"id": 1, "file_name": "n1.jpg"}],
                             "annotations": [{"id": 1, "image_id": 1, "caption": "A thing."}]}))
    return p
