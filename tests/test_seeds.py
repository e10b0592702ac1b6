"""The bundled sample in seeds/ is what the README, the docs and other tests run on, so it must hold together:
every id resolves, every size and box agrees with the real JPEG, and the answer disagreements that the
adapt tests rely on (ties, spelling variants) are really there."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from instructkit.formats import read_records
from instructkit.resources import seeds_dir

SEEDS = seeds_dir()
ANSWER_TYPES = {"yes/no", "number", "other"}
CONFIDENCES = {"yes", "maybe", "no"}


def load(rel: str):
    return json.loads((SEEDS / rel).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def questions() -> dict:
    return load("vqa/questions.json")


@pytest.fixture(scope="module")
def annotations() -> dict:
    return load("vqa/annotations.json")


@pytest.fixture(scope="module")
def captions() -> dict:
    return load("coco/captions.json")


@pytest.fixture(scope="module")
def instances() -> dict:
    return load("coco/instances.json")


@pytest.fixture(scope="module")
def image_sizes(captions) -> dict[int, tuple[int, int]]:
    sizes = {}
    for im in captions["images"]:
        path = SEEDS / "images" / im["file_name"]
        with Image.open(path) as img:
            img.load()  # a full decode: a truncated JPEG fails here, not in some later stage
            assert img.format == "JPEG", path
            sizes[im["id"]] = img.size
    return sizes


def test_image_folder_matches_image_list(captions):
    listed = {im["file_name"] for im in captions["images"]}
    on_disk = {p.name for p in (SEEDS / "images").iterdir()}
    assert listed == on_disk
    assert len(listed) >= 5


def test_file_names_follow_the_sample_convention(captions):
    # VQAv2 rows carry only image_id; the sample's documented convention is {image_id:012d}.jpg.
    for im in captions["images"]:
        assert im["file_name"] == f"{im['id']:012d}.jpg"
    readme = (SEEDS / "README.md").read_text(encoding="utf-8")
    assert "{image_id:012d}.jpg" in readme


def test_images_are_small_and_sizes_match_coco(captions, instances, image_sizes):
    assert captions["images"] == instances["images"]
    for im in captions["images"]:
        assert image_sizes[im["id"]] == (im["width"], im["height"]), im["file_name"]
        assert max(im["width"], im["height"]) <= 512


def test_every_image_has_a_licence_in_the_readme(captions):
    readme = (SEEDS / "README.md").read_text(encoding="utf-8")
    for im in captions["images"]:
        row = next((line for line in readme.splitlines() if line.startswith(f"| {im['id']} |")), None)
        assert row is not None, f"no README row for image {im['id']}"
        assert im["file_name"] in row
        assert "public domain" in row or "CC0" in row


def test_vqa_headers(questions, annotations):
    assert questions["data_subtype"] == annotations["data_subtype"] == "sample2026"
    assert questions["task_type"] == "Open-Ended"
    assert questions["data_type"] == "mscoco"
    assert 20 <= len(questions["questions"]) <= 30


def test_every_question_has_one_annotation_with_ten_answers(questions, annotations, captions):
    image_ids = {im["id"] for im in captions["images"]}
    qids = [q["question_id"] for q in questions["questions"]]
    aids = [a["question_id"] for a in annotations["annotations"]]
    assert len(set(qids)) == len(qids)
    assert len(set(aids)) == len(aids)
    assert set(qids) == set(aids)
    by_q = {q["question_id"]: q for q in questions["questions"]}
    for ann in annotations["annotations"]:
        q = by_q[ann["question_id"]]
        assert ann["image_id"] == q["image_id"] in image_ids
        assert q["question"].strip().endswith("?")
        assert ann["answer_type"] in ANSWER_TYPES
        assert ann["question_type"]
        answers = ann["answers"]
        assert len(answers) == 10, ann["question_id"]
        assert [a["answer_id"] for a in answers] == list(range(1, 11))
        assert all(a["answer_confidence"] in CONFIDENCES and a["answer"].strip() for a in answers)
        counts = Counter(a["answer"] for a in answers)
        top = max(counts.values())
        # The stored answer is one of the most frequent ones (with a tie, either side of it).
        assert counts[ann["multiple_choice_answer"]] == top, ann["question_id"]
        if ann["answer_type"] == "yes/no":
            assert set(counts) <= {"yes", "no"}


def test_answers_disagree_the_way_the_adapt_tests_need(annotations):
    ties, variants = 0, set()
    for ann in annotations["annotations"]:
        counts = Counter(a["answer"] for a in ann["answers"])
        ranked = counts.most_common()
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1] == 5:
            ties += 1
        variants |= set(counts)
    assert ties >= 1
    assert {"2", "two"} <= variants and {"1", "one"} <= variants
    assert any(len(Counter(a["answer"] for a in ann["answers"])) == 1 for ann in annotations["annotations"])


def test_captions(captions):
    ids = [c["id"] for c in captions["annotations"]]
    assert len(set(ids)) == len(ids)
    per_image = Counter(c["image_id"] for c in captions["annotations"])
    for im in captions["images"]:
        assert per_image[im["id"]] >= 5, im["id"]
    assert set(per_image) == {im["id"] for im in captions["images"]}
    texts = [c["caption"] for c in captions["annotations"]]
    assert len(set(texts)) == len(texts)
    assert all(t.strip() and t == t.strip() for t in texts)


def test_boxes_lie_inside_their_images(instances, image_sizes):
    cats = instances["categories"]
    cat_ids = [c["id"] for c in cats]
    assert len(set(cat_ids)) == len(cat_ids)
    assert all(c["name"] and c["supercategory"] for c in cats)
    ids = [a["id"] for a in instances["annotations"]]
    assert len(set(ids)) == len(ids)
    used = set()
    for ann in instances["annotations"]:
        x, y, w, h = ann["bbox"]
        width, height = image_sizes[ann["image_id"]]
        assert w > 0 and h > 0, ann["id"]
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height, ann["id"]
        assert ann["area"] == w * h
        assert ann["iscrowd"] == 0
        assert ann["category_id"] in cat_ids
        used.add(ann["category_id"])
    assert used == set(cat_ids)  # no category listed without a box


def test_boxes_name_what_the_photos_show(instances, captions):
    # A cheap truth check: the main object of each photo has a box.
    names = {c["id"]: c["name"] for c in instances["categories"]}
    files = {im["id"]: im["file_name"] for im in captions["images"]}
    boxed = {(files[a["image_id"]], names[a["category_id"]]) for a in instances["annotations"]}
    for pair in [("000000000001.jpg", "person"), ("000000000002.jpg", "cat"), ("000000000003.jpg", "cup"),
                 ("000000000004.jpg", "rocket"), ("000000000005.jpg", "tripod")]:
        assert pair in boxed


def test_sharegpt_rows_are_valid_text_conversations():
    rows = load("text/sharegpt.json")
    assert isinstance(rows, list) and 12 <= len(rows) <= 20
    for i, row in enumerate(rows):
        assert set(row) == {"messages", "images"}, i
        assert row["images"] == []
        msgs = row["messages"]
        start = 1 if msgs[0]["role"] == "system" else 0
        roles = [m["role"] for m in msgs[start:]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and len(roles) % 2 == 0, i
        assert all(m["content"].strip() and "<image>" not in m["content"] for m in msgs), i
    assert any(len(r["messages"]) > 3 for r in rows)  # some multi-turn
    reader = read_records(SEEDS / "text" / "sharegpt.json")
    records = list(reader)
    assert reader.format == "sharegpt"
    assert len(records) == len(rows)
    assert not reader.stats.rejected
    assert all(r.modality == "text" for r in records)
    assert len({r.id for r in records}) == len(records)


@pytest.mark.parametrize("rel", ["vqa/questions.json", "vqa/annotations.json", "coco/captions.json",
                                 "coco/instances.json", "text/sharegpt.json"])
def test_json_is_pretty_printed(rel):
    text = (SEEDS / rel).read_text(encoding="utf-8")
    assert text.endswith("\n") and re.search(r"\n {1,2}\S", text)
    assert max(len(line) for line in text.splitlines()) < 2000


def test_sample_stays_small():
    total = sum(p.stat().st_size for p in Path(SEEDS).rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024
