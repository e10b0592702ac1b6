"""Alpaca: ``{instruction, input, output}`` (text only), with LLaMA-Factory's ``history`` for earlier turns.

Reading joins ``instruction`` and a non-empty ``input`` with a blank line. Images and system turns do not
fit and are errors naming the row.
"""

from __future__ import annotations

from typing import Any

from ..errors import RowError
from ..records import MISSING_FIELD, UNSUPPORTED, WRONG_TYPE, Record
from . import _extras

NAME = "alpaca"
_KNOWN = {"id", "instruction", "input", "output", "history", "system", "source", "task", "meta"}


def sniff(obj: Any) -> bool:
    return isinstance(obj, dict) and "instruction" in obj and "output" in obj


def parse(obj: dict) -> dict:
    if not isinstance(obj, dict):
        raise RowError(WRONG_TYPE, f"expected a JSON object, got {type(obj).__name__}")
    for key in ("instruction", "output"):
        if key not in obj:
            raise RowError(MISSING_FIELD, f"missing required field {key!r}")
        if not isinstance(obj[key], str):
            raise RowError(WRONG_TYPE, f"{key!r} must be a string")
    inp = obj.get("input") or ""
    if not isinstance(inp, str):
        raise RowError(WRONG_TYPE, "'input' must be a string")
    messages = []
    if obj.get("system"):
        messages.append({"role": "system", "content": obj["system"]})
    for i, pair in enumerate(obj.get("history") or []):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise RowError(WRONG_TYPE, f"history[{i}] must be a [question, answer] pair")
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    user = obj["instruction"] + ("\n\n" + inp if inp else "")
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": obj["output"]}]
    return _extras.take(obj, {"images": [], "messages": messages}, _KNOWN)


def dump(record: Record, lean: bool = False) -> dict:
    if record.images:
        raise RowError(UNSUPPORTED, f"Alpaca is text-only; this row has {len(record.images)} image(s)")
    if record.system is not None:
        raise RowError(UNSUPPORTED, "Alpaca has no system turn (use sharegpt or canonical)")
    turns = record.turns()
    out: dict[str, Any] = {"id": record.id, "instruction": turns[-1][0], "input": "", "output": turns[-1][1]}
    if len(turns) > 1:
        out["history"] = [list(t) for t in turns[:-1]]
    return _extras.add(record, out, lean)
