"""The manifest: what went in (with content hashes), how it was mixed, and what came out, per input.

No timestamps or absolute machine paths: the same inputs and seed give a byte-identical manifest.
"""

from __future__ import annotations

import json
from typing import Any


def input_entry(scanned, *, available: int, emitted: int, unique: int, probability: float | None) -> dict:
    spec = scanned.spec
    out: dict[str, Any] = {
        "name": spec.name,
        "path": str(spec.path),
        "format": scanned.format,
        "sha256": scanned.sha256,
        "weight": spec.weight,
        "probability": None if probability is None else round(probability, 6),
        "cap": spec.cap,
        "mult": spec.mult,
        "read": scanned.read,
        "rejected": dict(sorted(scanned.rejected.items())),
        "duplicates": scanned.duplicates,
        "valid": scanned.valid,
        "image": scanned.image,
        "text": scanned.text,
        "capped_out": scanned.valid - available,
        "available": available,
        "emitted": emitted,
        "unique": unique,
        "repeated": emitted - unique,
        "dropped": available - unique,
    }
    return out


def totals(rows: int, image: int, per_input: dict[str, int]) -> dict:
    def share(n: int) -> float:
        return round(n / rows, 6) if rows else 0.0

    return {
        "rows": rows,
        "image": image,
        "text": rows - image,
        "modality_share": {"image": share(image), "text": share(rows - image)},
        "input_share": {name: share(n) for name, n in per_input.items()},
    }


def dumps(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


_COLUMNS = (("input", "name"), ("format", "format"), ("read", "read"), ("rejected", None),
            ("dup", "duplicates"), ("capped", "capped_out"), ("avail", "available"), ("p", "probability"),
            ("emitted", "emitted"), ("unique", "unique"), ("repeated", "repeated"), ("dropped", "dropped"),
            ("share", None))


def table(manifest: dict) -> str:
    """The manifest as a terminal table (plain text, aligned columns)."""
    out = manifest["output"]
    tot = manifest["totals"]
    rows = [[c for c, _ in _COLUMNS]]
    for inp in manifest["inputs"]:
        row = []
        for col, key in _COLUMNS:
            if col == "rejected":
                value = sum(inp["rejected"].values())
            elif col == "share":
                value = f"{tot['input_share'].get(inp['name'], 0.0):.1%}"
            else:
                value = inp[key]
            row.append("-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    params = ", ".join(f"{k}={v}" for k, v in manifest["parameters"].items() if k != "strategy")
    head = [f"mix: {manifest['parameters']['strategy']} (seed {manifest['seed']}; {params})"]
    tail = [f"wrote {tot['rows']} rows to {out['path']} ({out['format']}): image {tot['image']} "
            f"({tot['modality_share']['image']:.1%}), text {tot['text']} ({tot['modality_share']['text']:.1%})"]
    for inp in manifest["inputs"]:
        if inp["rejected"]:
            tail.append(f"  {inp['name']}: rejected " + ", ".join(f"{k} {v}" for k, v in inp["rejected"].items()))
    tail += [f"  note: {n}" for n in manifest["notes"]]
    return "\n".join(head + lines + tail)
