"""LLaVA: a JSON list of ``{id, image, conversations: [{from: human|gpt, value}]}``.

Text-only rows have no ``image`` key. LLaVA has no system turn and one image per row; a record that needs
either is an error naming the row. Fields instructkit adds (``source``, ``task``, ``meta``) ride along as
extra keys, which LLaVA's loader ignores, so conversions are lossless; ``lean`` drops them.
Unknown keys of a source file are kept in ``meta["fields"]`` and written back.
"""

from __future__ import annotations

from typing import Any

from ..errors import RowError
from ..records import MISSING_FIELD, UNSUPPORTED, WRONG_TYPE, Record
from . import _extras

NAME = "llava"
_ROLE_IN = {"human": "user", "gpt": "assistant", "system": "system", "user": "user", "assistant": "assistant"}
_ROLE_OUT = {"user": "human", "assistant": "gpt"}
_KNOWN = {"id", "image", "images", "conversations", "system", "source", "task", "meta"}


def sniff(obj: Any) -> bool:
    # `images` or a top-level `system` mark LLaMA-Factory's ShareGPT spelling of the same conversations.
    return (isinstance(obj, dict) and isinstance(obj.get("conversations"), list) and "images" not in obj
            and "system" not in obj)


def parse(obj: dict) -> dict:
    if not isinstance(obj, dict):
        raise RowError(WRONG_TYPE, f"expected a JSON object, got {type(obj).__name__}")
    convs = obj.get("conversations")
    if convs is None:
        raise RowError(MISSING_FIELD, "missing required field 'conversations'")
    if not isinstance(convs, list):
        raise RowError(WRONG_TYPE, "'conversations' must be a list")
    # LLaVA has no system turn, but a file sniffed as LLaVA from its first row may be LLaMA-Factory
    # ShareGPT whose later rows carry a `system` prompt; it is a turn, not a key to shelve in meta.
    messages = system_turn(obj)
    for i, turn in enumerate(convs):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise RowError(MISSING_FIELD, f"conversations[{i}] needs 'from' and 'value'")
        role = _ROLE_IN.get(turn["from"]) if isinstance(turn["from"], str) else None
        if role is None:
            raise RowError("bad-role", f"conversations[{i}]: unknown speaker {turn['from']!r} (human, gpt, system)")
        messages.append({"role": role, "content": turn["value"]})
    image = obj.get("image")
    if image is not None and obj.get("images"):
        raise RowError(WRONG_TYPE, "a row with both 'image' and 'images'")
    if image is None:
        # LLaMA-Factory's ShareGPT spelling, in a file sniffed as LLaVA from a first row without it.
        image = obj.get("images")
    if image is None:
        images = []
    elif isinstance(image, str):
        images = [image]
    elif isinstance(image, list):
        images = image
    else:
        raise RowError(WRONG_TYPE, "'image' (or 'images') must be a path or a list of paths")
    return _extras.take(obj, {"images": images, "messages": messages}, _KNOWN)


def system_turn(obj: dict) -> list[dict[str, str]]:
    system = obj.get("system")
    if system is None or system == "":
        return []
    if not isinstance(system, str):
        raise RowError(WRONG_TYPE, "'system' must be a string")
    return [{"role": "system", "content": system}]


def dump(record: Record, lean: bool = False) -> dict:
    if len(record.images) > 1:
        raise RowError(UNSUPPORTED, f"LLaVA holds one image per row; this row has {len(record.images)} "
                       "(use sharegpt or canonical)")
    if record.system is not None:
        raise RowError(UNSUPPORTED, "LLaVA conversations have no system turn (use sharegpt or canonical)")
    out: dict[str, Any] = {"id": record.id}
    if record.images:
        out["image"] = record.images[0]
    out["conversations"] = [{"from": _ROLE_OUT[m.role], "value": m.content} for m in record.messages]
    return _extras.add(record, out, lean)
