"""Chat-message formats.

* ``sharegpt`` — LLaMA-Factory's multimodal form: ``{"messages": [{"role", "content"}], "images": [...]}``
  (also the classic ``conversations`` + ``from``/``value`` spelling with ``images``, and a top-level
  ``system`` string).
* ``openai`` — OpenAI chat messages whose user content is a list of parts; each ``<image>`` placeholder
  becomes an ``image_url`` part at the same position, so text around images keeps its order.

Both readers accept string or part-list content, so a file is read the same whichever was detected.
"""

from __future__ import annotations

from typing import Any

from ..errors import RowError
from ..records import IMAGE_TOKEN, MISSING_FIELD, WRONG_TYPE, Record
from . import _extras
from .llava import system_turn

_ROLE_IN = {"human": "user", "gpt": "assistant", "user": "user", "assistant": "assistant", "system": "system"}
_KNOWN = {"id", "messages", "conversations", "images", "system", "source", "task", "meta"}


def sniff_sharegpt(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    if isinstance(obj.get("messages"), list):
        return not _has_parts(obj["messages"])
    return isinstance(obj.get("conversations"), list) and ("images" in obj or "system" in obj)


def sniff_openai(obj: Any) -> bool:
    # OpenAI fine-tuning rows have plain string content and no `images` key; LLaMA-Factory rows carry
    # `images` (our sharegpt writer always writes it). Both read the same; this only names the format.
    return (isinstance(obj, dict) and isinstance(obj.get("messages"), list)
            and (_has_parts(obj["messages"]) or "images" not in obj))


def _has_parts(messages: list) -> bool:
    return any(isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages)


def _content_from_parts(parts: list, images: list[str], where: str) -> str:
    text = []
    for j, part in enumerate(parts):
        if not isinstance(part, dict):
            raise RowError(WRONG_TYPE, f"{where}.content[{j}] must be an object")
        kind = part.get("type")
        if kind == "text":
            piece = part.get("text", "")
            if not isinstance(piece, str):
                raise RowError(WRONG_TYPE, f"{where}.content[{j}].text must be a string")
            text.append(piece)
        elif kind == "image" and part.get("image") is None:
            # TRL / HF VLM rows: a bare marker; the image itself is the next entry of the row's `images`.
            text.append(IMAGE_TOKEN)
        elif kind in ("image_url", "image"):
            url = part.get("image_url", part.get("image"))
            if isinstance(url, dict):
                url = url.get("url")
            if not isinstance(url, str):
                raise RowError(MISSING_FIELD, f"{where}.content[{j}] has no image URL")
            images.append(url)
            text.append(IMAGE_TOKEN)
        else:
            raise RowError(WRONG_TYPE, f"{where}.content[{j}]: unsupported part type {kind!r}")
    return "".join(text)


def parse(obj: dict) -> dict:
    if not isinstance(obj, dict):
        raise RowError(WRONG_TYPE, f"expected a JSON object, got {type(obj).__name__}")
    key = "messages" if "messages" in obj else "conversations" if "conversations" in obj else None
    if key is None:
        raise RowError(MISSING_FIELD, "missing required field 'messages'")
    raw = obj[key]
    if not isinstance(raw, list):
        raise RowError(WRONG_TYPE, f"'{key}' must be a list")
    given_images = obj.get("images") or []
    if not isinstance(given_images, list):
        raise RowError(WRONG_TYPE, "'images' must be a list")
    part_images: list[str] = []
    messages = system_turn(obj)
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise RowError(WRONG_TYPE, f"{key}[{i}] must be an object")
        role = m.get("role", m.get("from"))
        content = m.get("content", m.get("value"))
        if role is None or content is None:
            raise RowError(MISSING_FIELD, f"{key}[{i}] needs 'role' and 'content'")
        mapped = _ROLE_IN.get(role) if isinstance(role, str) else None
        if mapped is None:
            raise RowError("bad-role", f"{key}[{i}]: unsupported role {role!r}")
        if isinstance(content, list):
            content = _content_from_parts(content, part_images, f"{key}[{i}]")
        messages.append({"role": mapped, "content": content})
    if part_images and given_images:
        raise RowError(WRONG_TYPE, "images given both as content parts and in 'images'")
    return _extras.take(obj, {"images": part_images or given_images, "messages": messages}, _KNOWN)


def dump_sharegpt(record: Record, lean: bool = False) -> dict:
    out = {"id": record.id, "messages": [{"role": m.role, "content": m.content} for m in record.messages],
           "images": list(record.images)}
    return _extras.add(record, out, lean)


def _parts(content: str, images: list[str], cursor: list[int]) -> list[dict] | str:
    if IMAGE_TOKEN not in content:
        return content
    parts: list[dict] = []
    pieces = content.split(IMAGE_TOKEN)
    for j, piece in enumerate(pieces):
        if piece:
            parts.append({"type": "text", "text": piece})
        if j < len(pieces) - 1:
            parts.append({"type": "image_url", "image_url": {"url": images[cursor[0]]}})
            cursor[0] += 1
    return parts


def dump_openai(record: Record, lean: bool = False) -> dict:
    cursor = [0]
    msgs = [{"role": m.role, "content": _parts(m.content, record.images, cursor)} for m in record.messages]
    return _extras.add(record, {"id": record.id, "messages": msgs}, lean)
