"""Annotation readers: COCO and generic rows, with every kind of bad input counted or rejected."""

from collections import Counter

from instructkit.errors import RowError
from instructkit.llm import LLMConfig
from instructkit.resources import seeds_dir
from instructkit.self_instruct.inputs import ImageContext, coco_contexts, jsonl_contexts
from instructkit.self_instruct.job import run_self_instruct


def test_coco_pairs_captions_and_boxes_in_order():
    caps = {"images": [{"id": 7, "file_name": "x.jpg", "width": 100, "height": 50},
                       {"id": 8, "width": 10, "height": 10}],
            "annotations": [{"image_id": 7, "caption": " A dog. "}, {"image_id": 7, "caption": ""},
                            {"image_id": 8, "caption": "Two cats."}]}
    inst = {"categories": [{"id": 1, "name": "dog"}],
            "annotations": [{"image_id": 7, "category_id": 1, "bbox": [10, 5, 20, 10]},
                            {"image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1]}]}
    counts = Counter()
    out = list(coco_contexts(caps, inst, counts))
    assert isinstance(out[0], ImageContext)
    assert out[0].captions == ["A dog."] and out[0].image == "x.jpg"
    assert out[0].boxes[0].label == "dog" and out[0].boxes[0].xyxy == (10, 5, 30, 15)
    assert out[1].image == "000000000008.jpg"        # COCO 2017 naming when file_name is absent
    assert counts == {"box-unknown-image": 1}


def test_generic_rows_reject_what_they_cannot_use():
    rows = [
        (1, {"image": "a.jpg", "width": 0, "height": 10, "captions": ["x"]}),
        (2, {"image": "b.jpg", "width": 10, "height": 10, "captions": []}),
        (3, ["not", "an", "object"]),
        (4, {"image": "c.jpg", "width": 10, "height": 10, "caption": "One line.",
             "boxes": [{"bbox": [0, 0, 1, 1]}]}),
        (5, {"image": "d.jpg", "width": 10, "height": 10, "caption": "One line.", "box_format": "zz",
             "boxes": []}),
        (6, {"image": "e.jpg", "width": 10, "height": 10, "caption": "One line.", "box_format": "xyxy-norm",
             "boxes": [{"label": "ball", "bbox": [0.5, 0.5, 2.0, 0.9]}]}),
    ]
    counts = Counter()
    out = list(jsonl_contexts(rows, counts, file="rows.jsonl"))
    reasons = [o.reason if isinstance(o, RowError) else "ok" for o in out]
    assert reasons == ["bad-image-size", "no-captions", "bad-row", "bad-row", "bad-row", "ok"]
    assert out[1].where == "rows.jsonl:2"
    assert out[5].boxes[0].xyxy == (5.0, 5.0, 10.0, 9.0) and counts == {"box-clipped": 1}


def test_dry_run_writes_nothing(tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_text("earlier real output\n")
    cfg = LLMConfig(model="gpt-4o-mini", dry_run=True, progress=False)
    funnel = run_self_instruct(output=out, llm=cfg, captions=seeds_dir() / "coco/captions.json",
                               instances=seeds_dir() / "coco/instances.json")
    assert funnel["stopped"] == "dry-run" and funnel["requests"] == 18 and funnel["written"] == 0
    assert out.read_text() == "earlier real output\n"
