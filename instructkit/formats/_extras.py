"""instructkit's own fields riding in other formats, so a conversion round trip loses nothing.

``source``, ``task`` and ``meta`` are written as extra keys (trainers ignore unknown keys); a source file's
own unknown keys are kept in ``meta["fields"]`` on reading and written back at the top level.
"""

from __future__ import annotations

from typing import Any

from ..errors import RowError
from ..records import WRONG_TYPE, Record

OWN = ("source", "task", "meta")


def take(obj: dict, out: dict[str, Any], known: set[str]) -> dict[str, Any]:
    if obj.get("id") is not None:
        out["id"] = str(obj["id"])
    for key in OWN:
        if key in obj:
            out[key] = obj[key]
    extra = {k: v for k, v in obj.items() if k not in known}
    if extra:
        meta = out.get("meta", {})
        if not isinstance(meta, dict):
            raise RowError(WRONG_TYPE, "'meta' must be an object")
        kept = meta.get("fields", {})
        # Never overwrite what the row already keeps there: that would lose it without a word.
        if not isinstance(kept, dict) or set(kept) & set(extra):
            raise RowError(WRONG_TYPE, "meta.fields holds this row's unknown keys "
                           f"({', '.join(sorted(extra))}), but the row already has a different meta.fields")
        out["meta"] = {**meta, "fields": {**kept, **extra}}
    return out


def add(record: Record, out: dict[str, Any], lean: bool) -> dict[str, Any]:
    if lean:
        return out
    meta = dict(record.meta)
    extra = meta.pop("fields", None) if isinstance(meta.get("fields"), dict) else None
    if record.source:
        out["source"] = record.source
    if record.task:
        out["task"] = record.task
    if meta:
        out["meta"] = meta
    if extra:
        out.update({k: v for k, v in extra.items() if k not in out})
    return out
