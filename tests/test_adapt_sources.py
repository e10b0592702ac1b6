"""Source readers: each layout, its file-name convention, and the bad inputs the issue lists."""

from __future__ import annotations

import json

import pytest
from adapt_helpers import jpeg, jsonl, vqav2_pair

from instructkit.adapt import jsonstream
from instructkit.adapt.sources import Bad, Item, open_source
from instructkit.errors import UsageError


def _split(source):
    items, bad = [], []
    for x in source:
        (items if isinstance(x, Item) else bad).append(x)
    return items, bad


def test_vqav2_lockstep_join_and_coco_2014_names(tmp_path):
    q, a, root = vqav2_pair(tmp_path, [(10, 1, "What is it?"), (11, 1, "Is it red?"), (20, 2, "How many?")],
                            {10: ["cat"] * 10, 11: ["yes"] * 9 + ["no"], 20: ["2"] * 10})
    src = open_source(q, annotations=a, image_root=root)
    assert src.name == "vqav2"
    items, bad = _split(src)
    assert bad == []
    assert [(i.sid, i.image, i.question) for i in items] == [
        (10, "COCO_val2014_000000000001.jpg", "What is it?"), (11, "COCO_val2014_000000000001.jpg", "Is it red?"),
        (20, "COCO_val2014_000000000002.jpg", "How many?")]
    assert items[1].answers == ["yes"] * 9 + ["no"] and items[1].confidences == ["yes"] * 10
    assert items[0].line == 7 and items[0].file == str(q)   # the line where that question object starts
    assert src.pending_peak == 0


def test_vqav2_plain_image_names_and_subtype_after_the_list(tmp_path):
    q, a, root = vqav2_pair(tmp_path, [(10, 7, "What?")], {10: ["x"] * 10}, subtype="sample2026",
                            coco_names=False, subtype_last=True)
    items, _ = _split(open_source(q, annotations=a, image_root=root))
    assert items[0].image == "000000000007.jpg"
    src = open_source(q, annotations=a, image_root=root, image_pattern="COCO_{subtype}_{image_id:012d}.jpg")
    items, _ = _split(src)
    assert items[0].image == "COCO_sample2026_000000000007.jpg"   # subtype found after the questions list


def test_vqav2_out_of_order_annotations_orphans_and_missing(tmp_path):
    q, a, root = vqav2_pair(tmp_path, [(1, 1, "A?"), (2, 1, "B?"), (3, 1, "  "), (4, 2, "D?")],
                            {1: ["a1"] * 10, 2: ["b"] * 10, 3: ["c"] * 10, 99: ["z"] * 10, 5: []},
                            annotation_order=[3, 99, 2, 1, 5])
    items, bad = _split(open_source(q, annotations=a, image_root=root))
    assert [i.sid for i in items] == [1, 2]
    reasons = sorted((b.error.reason, b.error.file.endswith("annotations.json")) for b in bad)
    assert reasons == [("missing-question", False), ("no-annotation", False), ("orphan-annotation", True),
                       ("orphan-annotation", True)]
    orphan = next(b for b in bad if b.data == {"question_id": 99})
    assert "question_id 99" in str(orphan.error) and orphan.error.line is not None


def test_jsonstream_values_across_chunk_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonstream, "CHUNK", 7)
    rows = [{"question_id": i, "question": f"q{i} " + "é" * i, "n": 12345 + i} for i in range(40)]
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"info": {"x": [1, 2]}, "questions": rows, "data_subtype": "s"}, indent=2,
                               ensure_ascii=False))
    meta = {}
    got = list(jsonstream.stream_array(path, "questions", meta))
    assert [r for _, _, r in got] == rows
    assert [i for _, i, _ in got] == list(range(40))
    assert meta == {"info": {"x": [1, 2]}, "data_subtype": "s"}
    lines = path.read_text().split("\n")
    assert all(lines[line - 1].strip() == "{" for line, _, _ in got)


def test_one_line_files_name_the_row_index(tmp_path):
    # The official VQAv2 files are written on one line: a line number would say nothing.
    q, a, root = vqav2_pair(tmp_path, [(1, 1, "A?"), (2, 1, "B?"), (3, 1, " ")], {1: ["x"], 2: ["y"], 3: ["z"]})
    for path in (q, a):
        path.write_text(json.dumps(json.loads(path.read_text())))
    items, bad = _split(open_source(q, annotations=a, image_root=root))
    assert [i.sid for i in items] == [1, 2] and (items[0].line, items[1].line, items[1].row) == (1, None, 1)
    assert bad[0].error.where == f"{q} row 2" and bad[0].error.reason == "missing-question"


def test_jsonstream_malformed_names_the_line(tmp_path):
    path = tmp_path / "q.json"
    path.write_text('{"questions": [\n {"a": 1},\n {"a": 2,, }\n]}')
    with pytest.raises(Exception, match=r"q.json:3: malformed JSON"):
        list(jsonstream.stream_array(path, "questions"))


def test_gqa_aokvqa_textvqa_coco_are_sniffed(tmp_path):
    gqa = tmp_path / "gqa.json"
    gqa.write_text(json.dumps({"201": {"imageId": "n1", "question": "Is it blue?", "answer": "no",
                                       "fullAnswer": "No, it is red."}, "202": {"imageId": "n2", "question": "",
                                                                                "answer": "x"}}))
    items, bad = _split(open_source(gqa))
    assert open_source(gqa).name == "gqa"
    assert (items[0].image, items[0].answers, items[0].extra) == ("n1.jpg", ["no"], {"full_answer": "No, it is red."})
    assert [b.error.reason for b in bad] == ["missing-question"]

    aok = tmp_path / "aokvqa.json"
    aok.write_text(json.dumps([{"question_id": "q1", "image_id": 9, "question": "Why?", "choices": ["a", "b", "c"],
                                "correct_choice_idx": 2, "direct_answers": ["c"] * 10, "rationales": ["r"]}]))
    src = open_source(aok)
    items, _ = _split(src)
    assert src.name == "aokvqa" and "options" in src.variables
    assert (items[0].image, items[0].choices, items[0].correct) == ("000000000009.jpg", ["a", "b", "c"], 2)

    tvqa = tmp_path / "textvqa.json"
    tvqa.write_text(json.dumps({"dataset_name": "textvqa", "data": [
        {"question_id": 5, "image_id": "abc", "question": "What brand?", "answers": ["nike"] * 10,
         "ocr_tokens": ["nike", "just"]}]}))
    src = open_source(tvqa)
    items, _ = _split(src)
    assert src.name == "textvqa" and items[0].ocr == ["nike", "just"] and items[0].image == "abc.jpg"

    coco = tmp_path / "captions.json"
    coco.write_text(json.dumps({"info": {}, "licenses": [{"id": 1}], "images": [{"id": 3, "file_name": "x.jpg"}],
                                "annotations": [{"id": 1, "image_id": 3, "caption": "A dog."},
                                                {"id": 2, "image_id": 4, "caption": "Lost."}]}))
    src = open_source(coco)
    items, bad = _split(src)
    assert src.name == "coco-captions" and items[0].answers == ["A dog."] and items[0].image == "x.jpg"
    assert [b.error.reason for b in bad] == ["missing-image-field"]


def test_generic_columns_lists_and_unknown_column(tmp_path):
    path = jsonl(tmp_path / "t.jsonl", [{"img": "a.jpg", "q": "What?", "ans": ["x", "y", "x"]},
                                        {"img": "b.jpg", "q": "", "ans": "z"},
                                        {"img": "c.jpg", "q": "Who?", "ans": []}])
    src = open_source(path, image_col="img", question_col="q", answer_col="ans")
    assert src.name == "generic"
    items, bad = _split(src)
    assert items[0].answers == ["x", "y", "x"] and items[0].image == "a.jpg"
    assert [(b.error.reason, b.error.line) for b in bad] == [("missing-question", 2), ("missing-answer", 3)]
    with pytest.raises(UsageError, match=r"no column 'image' \(--image-col\); available columns: ans, img, q"):
        list(open_source(path, question_col="q", answer_col="ans"))


def test_generic_csv_with_choices(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("image,question,options,answer\na.jpg,Which?,red|green|blue,B\n")
    items, _ = _split(open_source(path, choices_col="options"))
    assert items[0].choices == ["red", "green", "blue"] and items[0].correct == 1


def test_vqav2_questions_file_without_annotations_is_explained(tmp_path):
    q, a, _ = vqav2_pair(tmp_path, [(1, 1, "A?")], {1: ["x"]}, make_images=False)
    with pytest.raises(UsageError, match="--annotations"):
        open_source(q)
    with pytest.raises(UsageError, match="pass the questions file"):
        open_source(a)


def test_jpeg_helper_makes_real_images(tmp_path):
    from instructkit.images import check_image

    assert check_image(jpeg(tmp_path / "x.jpg")).format == "JPEG"
    assert isinstance(Bad, type)
