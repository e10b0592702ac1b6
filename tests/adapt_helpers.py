"""Tiny crafted inputs for the adapt tests: real JPEG files and VQAv2 / GQA / A-OKVQA / TextVQA / COCO layouts."""

from __future__ import annotations

import json
from pathlib import Path


def jpeg(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path, "JPEG")
    return path


def vqav2_pair(tmp: Path, questions: list[tuple[int, int, str]], answers: dict[int, list[str]], *,
               subtype: str = "val2014", coco_names: bool = True, annotation_order: list[int] | None = None,
               subtype_last: bool = False, make_images: bool = True) -> tuple[Path, Path, Path]:
    """questions: (question_id, image_id, text); answers: question_id -> 10 (or any number of) answers."""
    root = tmp / "images"
    if make_images:
        for _, image_id, _ in questions:
            name = f"COCO_{subtype}_{image_id:012d}.jpg" if coco_names else f"{image_id:012d}.jpg"
            if not (root / name).exists():
                jpeg(root / name)
    qs = [{"image_id": i, "question": q, "question_id": qid} for qid, i, q in questions]
    qdoc = {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco"}
    if subtype_last:
        qdoc["questions"] = qs
        qdoc["data_subtype"] = subtype
    else:
        qdoc["data_subtype"] = subtype
        qdoc["questions"] = qs
    image_of = {qid: i for qid, i, _ in questions}
    order = annotation_order if annotation_order is not None else list(answers)
    anns = [{"question_id": qid, "image_id": image_of.get(qid, 0), "multiple_choice_answer": answers[qid][0]
             if answers[qid] else "", "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1}
                                                  for k, a in enumerate(answers[qid])]} for qid in order]
    qpath, apath = tmp / "questions.json", tmp / "annotations.json"
    qpath.write_text(json.dumps(qdoc, indent=1))
    apath.write_text(json.dumps({"info": {}, "data_subtype": subtype, "annotations": anns}, indent=1))
    return qpath, apath, root


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
