"""Rejects file: one JSONL row per rejected input, with the reason, where it came from and the data."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from ..errors import RowError
from .atomic import atomic_write


class RejectsWriter:
    """Context manager; ``write`` as you go, the file appears (atomically) on exit. ``counts`` by reason."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.counts: Counter[str] = Counter()
        self._cm: contextlib.AbstractContextManager | None = None
        self._fh = None

    def __enter__(self) -> RejectsWriter:
        self._cm = atomic_write(self.path, "wb")
        self._fh = self._cm.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._cm is not None
        self._cm.__exit__(*exc)

    def write(self, error: RowError, data: Any = None) -> None:
        if isinstance(data, (bytes, bytearray)):
            data = bytes(data).decode("utf-8", "backslashreplace").rstrip("\n")
        row = {**error.to_dict(), "data": data}
        self._fh.write(orjson.dumps(row, default=str) + b"\n")
        self.counts[error.reason] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())
