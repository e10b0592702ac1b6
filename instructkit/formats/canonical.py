"""Canonical JSONL: one ``Record`` per line, exactly the pydantic model."""

from __future__ import annotations

from typing import Any

from ..records import Record

NAME = "canonical"
FIELDS = frozenset(Record.model_fields)
ORDER = tuple(Record.model_fields)


def sniff(obj: Any) -> bool:
    # Our writer always writes every field, in the model's order; a file with fewer is some other messages
    # format, and the sharegpt writer's rows carry the same keys in another order (messages first). A row
    # with our keys in another order reads the same through either parser.
    return isinstance(obj, dict) and len(obj) == len(ORDER) and tuple(obj) == ORDER


def parse(obj: dict) -> dict:
    return obj


def dump(record: Record, lean: bool = False) -> dict:
    return record.model_dump()
