"""Atomic file writes: write to a temporary file beside the target, rename on success.

A crash or kill leaves the previous file (or nothing) in place, never a half-written one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import UsageError

_BUFFER = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    target = Path(path)
    started = time.time()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:   # a parent that is a file, a read-only folder: the user's to fix, not a crash
        raise UsageError(f"{target}: cannot write here ({exc.strerror or exc})") from None
    try:
        # mkstemp makes 0600 files; outputs should get the usual umask-derived mode like any other file.
        os.chmod(tmp, 0o666 & ~_umask())
        # A large buffer: writers emit one small row at a time, and 8 KiB buffers cost a syscall every ~16 rows.
        with os.fdopen(fd, mode, buffering=_BUFFER if "b" in mode else -1, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _remove_stale(target, started)


def _remove_stale(target: Path, started: float) -> None:
    """A writer killed with -9 leaves its temporary file behind; the next successful write of the same
    target removes such leftovers, those untouched since before this write began (a live writer's file
    keeps changing)."""
    # Exactly mkstemp's shape for this target (8 random characters), so ``out.json`` never touches the live
    # temporary file of ``out.json.rejects.jsonl``.
    shape = re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}\.tmp")
    for old in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if shape.fullmatch(old.name) and old.stat().st_mtime < started:
                old.unlink()
