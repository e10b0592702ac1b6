"""Sample records for the format, convert and validate tests, built from the bundled seeds (VQA questions
with their photos, language-only ShareGPT conversations) plus hand-made rows that stress the edges:
several turns, text around ``<image>``, unicode, meta with nested values."""

from __future__ import annotations

import json
from collections import Counter

from instructkit.records import Record, conversation, make_record
from instructkit.resources import seeds_dir

SEEDS = seeds_dir()


def image_path(image_id: int) -> str:
    return f"images/{image_id:012d}.jpg"


def vqa_records() -> list[Record]:
    questions = json.loads((SEEDS / "vqa/questions.json").read_text(encoding="utf-8"))["questions"]
    answers = {a["question_id"]: a for a in
               json.loads((SEEDS / "vqa/annotations.json").read_text(encoding="utf-8"))["annotations"]}
    out = []
    for q in questions:
        votes = Counter(a["answer"] for a in answers[q["question_id"]]["answers"])
        out.append(conversation(q["question"], votes.most_common(1)[0][0], images=[image_path(q["image_id"])],
                                source="seeds/vqa", task="vqa", meta={"question_id": q["question_id"]}))
    return out


def text_records(*, with_system: bool = True) -> list[Record]:
    rows = json.loads((SEEDS / "text/sharegpt.json").read_text(encoding="utf-8"))
    out = []
    for row in rows:
        rec = make_record({"images": row["images"], "messages": row["messages"], "source": "seeds/text",
                           "task": "text"})
        if with_system or rec.system is None:
            out.append(rec)
    return out


def edge_records() -> list[Record]:
    return [
        make_record({"images": [image_path(2)], "source": "hand", "task": "conversation",
                     "meta": {"nested": {"a": [1, 2.5, None, True]}, "ünï": "çödé"},
                     "messages": [
                         {"role": "user", "content": "Look: <image>\nWhat animal is this?"},
                         {"role": "assistant", "content": "A tabby cat."},
                         {"role": "user", "content": "What is it doing?  \n(two spaces, trailing)  "},
                         {"role": "assistant", "content": "Resting and looking at the camera 🐈."}]}),
        make_record({"id": "given-id-7", "images": [], "messages": [
            {"role": "user", "content": "Translate 'chat' into English."},
            {"role": "assistant", "content": "cat"}]}),
    ]


def llava_compatible() -> list[Record]:
    """Rows every chain format can hold: at most one image, no system turn."""
    return vqa_records() + text_records(with_system=False) + edge_records()


def multi_image() -> Record:
    return make_record({"images": [image_path(1), image_path(2)], "messages": [
        {"role": "user", "content": "<image>\n<image>\nWhich of the two photos shows a cat?"},
        {"role": "assistant", "content": "The second one."}], "task": "compare"})


def with_system() -> Record:
    return conversation("Say hi.", "Hi.", system="Be brief.")
