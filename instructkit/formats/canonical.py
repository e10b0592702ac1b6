"""Canonical JSONL: one ``Record`` per line, exactly the pydantic model."""

from __future__ import annotations

from typing import Any

from ..records import Record

NAME = "canonical"
FIELDS = frozenset(Record.model_fields)


def sniff(obj: Any) -> bool:
    # Our writer always writes every field; a file with fewer is some other messages format.
    return isinstance(obj, dict) and set(obj) == FIELDS


def parse(obj: dict) -> dict:
    return obj


def dump(record: Record, lean: bool = False) -> dict:
    return record.model_dump()
