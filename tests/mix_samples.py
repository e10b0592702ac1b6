"""Small record files for the mix tests: canonical text rows and a LLaVA list of image rows."""

from __future__ import annotations

import json
from pathlib import Path

import orjson


def text_row(i: int, source: str = "", rid: str | None = None) -> dict:
    return {"id": f"t{i}" if rid is None else rid, "images": [],
            "messages": [{"role": "user", "content": f"Question {i}?"},
                         {"role": "assistant", "content": f"Answer {i}."}],
            "source": source, "task": "text", "meta": {}}


def write_text(path: Path, n: int, **kw) -> Path:
    path.write_bytes(b"".join(orjson.dumps(text_row(i, **kw)) + b"\n" for i in range(n)))
    return path


def write_llava(path: Path, n: int) -> Path:
    rows = [{"id": f"i{i}", "image": f"img/{i}.jpg",
             "conversations": [{"from": "human", "value": f"<image>\nWhat is {i}?"},
                               {"from": "gpt", "value": f"It is {i}."}]} for i in range(n)]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path
