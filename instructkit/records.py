"""The record: one schema that every stage reads and yields (see DESIGN.md).

A record that breaks a rule is rejected with a reason, never repaired. Rules:

* ``extra="forbid"`` on both models;
* the number of ``<image>`` placeholders over all messages equals ``len(images)``;
* roles alternate user/assistant after an optional system turn, and the last turn is the assistant's;
* user and assistant turns are not blank;
* a relative image path may not climb out of the image root (``../``).

``id`` is a content hash of (images, messages) unless the source gave one.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .errors import RecordError

IMAGE_TOKEN = "<image>"
Role = Literal["system", "user", "assistant"]

# Reasons, shared by readers, validate and rejects files, so counts line up everywhere.
BAD_JSON = "bad-json"
NOT_UTF8 = "not-utf8"
EMPTY_FILE = "empty-file"
MISSING_FIELD = "missing-field"
WRONG_TYPE = "wrong-type"
EXTRA_FIELD = "extra-field"
BAD_ROLE = "bad-role"
EMPTY_MESSAGES = "empty-messages"
ROLE_ORDER = "role-order"
LAST_TURN = "last-turn-not-assistant"
EMPTY_TURN = "empty-turn"
IMAGE_COUNT = "image-count"
IMAGE_ESCAPES_ROOT = "image-path-escapes-root"
IMAGE_MISSING = "image-missing"
IMAGE_CORRUPT = "image-corrupt"
UNSUPPORTED = "unsupported-by-format"


class Message(BaseModel):
    # Cache only keys when parsing JSON: values (message texts) rarely repeat, and caching them costs time.
    model_config = ConfigDict(extra="forbid", cache_strings="keys")

    role: Role
    content: str


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", cache_strings="keys")

    id: str = ""
    images: list[str] = []
    messages: list[Message]
    source: str = ""
    task: str = ""
    meta: dict[str, Any] = {}

    @model_validator(mode="after")
    def _check_rules(self) -> Record:
        check_rules(self.images, self.messages)
        if not self.id:
            self.id = content_id(self.images, self.messages)
        return self

    # Convenience views used by many stages.
    @property
    def has_images(self) -> bool:
        return bool(self.images)

    @property
    def modality(self) -> str:
        return "image" if self.images else "text"

    def turns(self) -> list[tuple[str, str]]:
        """(user, assistant) pairs, system turn excluded."""
        msgs = self.messages[1:] if self.messages and self.messages[0].role == "system" else self.messages
        return [(msgs[i].content, msgs[i + 1].content) for i in range(0, len(msgs) - 1, 2)]

    @property
    def system(self) -> str | None:
        return self.messages[0].content if self.messages and self.messages[0].role == "system" else None


def check_rules(images: list[str], messages: list[Message]) -> None:
    # Hot path (every record read or built): plain loops, no helpers, so 1M rows stay cheap.
    if not messages:
        raise PydanticCustomError(EMPTY_MESSAGES, "record has no messages")
    start = 1 if messages[0].role == "system" else 0
    n = len(messages)
    if start == n:
        raise PydanticCustomError(EMPTY_MESSAGES, "record has only a system turn")
    placeholders = messages[0].content.count(IMAGE_TOKEN) if start else 0
    expected = "user"
    for i in range(start, n):
        m = messages[i]
        content = m.content
        if m.role != expected:
            raise PydanticCustomError(
                ROLE_ORDER, "message {index}: expected role {expected}, got {got}",
                {"index": i, "expected": expected, "got": m.role})
        if not content or content.isspace():
            raise PydanticCustomError(EMPTY_TURN, "message {index} ({role}) is blank",
                                      {"index": i, "role": m.role})
        if "<" in content:
            placeholders += content.count(IMAGE_TOKEN)
        expected = "assistant" if expected == "user" else "user"
    if messages[-1].role != "assistant":
        raise PydanticCustomError(LAST_TURN, "the last turn is {role}'s, expected assistant's",
                                  {"role": messages[-1].role})
    if placeholders != len(images):
        raise PydanticCustomError(
            IMAGE_COUNT, "{n} '<image>' placeholder(s) but {m} image(s)", {"n": placeholders, "m": len(images)})
    for path in images:
        if ".." in path and escapes_root(path):
            raise PydanticCustomError(IMAGE_ESCAPES_ROOT, "image path '{path}' climbs out of the image root",
                                      {"path": path})


def is_url(path: str) -> bool:
    return path.startswith(("http://", "https://", "data:", "s3://", "gs://"))


def escapes_root(path: str) -> bool:
    if is_url(path) or path.startswith("/"):
        return False
    return posixpath.normpath(path.replace("\\", "/")).startswith("..")


def content_id(images: Iterable[str], messages: Iterable[Message]) -> str:
    """96-bit content hash of images and messages; separators are control characters, so no two
    different records serialise to the same bytes."""
    # One join and one encode: the same bytes as feeding the pieces one by one, several times faster.
    parts: list[str] = []
    for path in images:
        parts.append(path)
        parts.append("\x1f")
    parts.append("\x1e")
    for m in messages:
        parts.append(m.role)
        parts.append("\x1f")
        parts.append(m.content)
        parts.append("\x1e")
    return hashlib.blake2b("".join(parts).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


_PYDANTIC_REASONS = {
    "missing": MISSING_FIELD,
    "extra_forbidden": EXTRA_FIELD,
    "literal_error": BAD_ROLE,
    "json_invalid": BAD_JSON,
    "json_type": BAD_JSON,
}


def record_error(exc: ValidationError, *, file: str | None = None, line: int | None = None,
                 row: int | None = None) -> RecordError:
    """Turn a pydantic error into one ``RecordError`` with a reason and a readable message.

    A row can break several rules at once; the order pydantic lists them in has changed between releases,
    so the one reported is chosen by a fixed priority (missing fields first) to keep reasons stable."""
    errors = exc.errors(include_url=False)
    err = min(errors, key=lambda e: _PRIORITY.get(e["type"], len(_PRIORITY)))
    kind = err["type"]
    reason = _PYDANTIC_REASONS.get(kind)
    if reason is None:
        reason = kind if kind in _CUSTOM_REASONS else WRONG_TYPE
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
    msg = err["msg"]
    if reason == MISSING_FIELD:
        msg = f"missing required field {loc!r}"
    elif reason == EXTRA_FIELD:
        msg = f"unknown field {loc!r}"
    elif loc:
        msg = f"{loc}: {msg}"
    return RecordError(reason, msg, file=file, line=line, row=row)


_PRIORITY = {"json_invalid": 0, "json_type": 0, "missing": 1, "extra_forbidden": 2}
_CUSTOM_REASONS = {EMPTY_MESSAGES, ROLE_ORDER, LAST_TURN, EMPTY_TURN, IMAGE_COUNT, IMAGE_ESCAPES_ROOT}


def make_record(data: dict[str, Any], *, file: str | None = None, line: int | None = None,
                row: int | None = None) -> Record:
    """Validate a dict into a ``Record`` or raise ``RecordError`` naming where it came from."""
    try:
        return Record.model_validate(data)
    except ValidationError as exc:
        raise record_error(exc, file=file, line=line, row=row) from None


def conversation(user: str, assistant: str, *, images: list[str] | None = None, system: str | None = None,
                 **fields: Any) -> Record:
    """Build a one-turn record; ``<image>`` is put in front of the user turn for each image when the
    text has none (LLaVA's convention)."""
    images = list(images or [])
    if images and IMAGE_TOKEN not in user:
        user = (IMAGE_TOKEN + "\n") * len(images) + user
    msgs = [{"role": "system", "content": system}] if system else []
    msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return make_record({"images": images, "messages": msgs, **fields})
