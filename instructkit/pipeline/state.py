"""Content hashes of inputs and outputs, and the per-step state that lets a rerun skip finished work.

State lives in ``<workdir>/.instructkit/``: ``steps/<name>.json`` per finished step and ``hashes.json``, a
cache of file hashes keyed by (path, size, mtime) so that a rerun does not re-read gigabytes of unchanged
annotations. The cache only saves time; a stale entry is impossible to hit because size and mtime are keys.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..formats.atomic import atomic_write

STATE_DIR = ".instructkit"
# Files a stage rewrites with wall-clock figures on every run; they say how a run went, not what it made.
VOLATILE = ("train_log.jsonl",)
_CHUNK = 1 << 20


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def digest(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj)).hexdigest()


class Hasher:
    """sha256 of files and folders, cached by (path, size, mtime_ns) in the state dir."""

    def __init__(self, cache_file: Path | None, workdir: Path | None = None, *, readonly: bool = False):
        self.cache_file = cache_file
        self.readonly = readonly
        # Stages record where they wrote (a model folder's config lists its output path); inside folder
        # outputs, JSON files are hashed with the work folder's path replaced so that two builds in
        # different folders hash alike. Plain file outputs are hashed as they are (sha256sum agrees).
        self.workdir = str(workdir.resolve()).encode() if workdir is not None else None
        self.cache: dict[str, list] = {}
        self.dirty = False
        if cache_file is not None and cache_file.is_file():
            try:
                self.cache = json.loads(cache_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.cache = {}

    def file(self, path: Path, *, portable: bool = False) -> str:
        st = path.stat()
        portable = portable and self.workdir is not None and path.suffix == ".json"
        key = str(path.resolve()) + ("|portable" if portable else "")
        hit = self.cache.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        h = hashlib.sha256()
        if portable:
            assert self.workdir is not None
            h.update(path.read_bytes().replace(self.workdir, b"${workdir}"))
        else:
            with open(path, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
        value = h.hexdigest()
        self.cache[key] = [st.st_size, st.st_mtime_ns, value]
        self.dirty = True
        return value

    def path(self, path: Path) -> str:
        """A file's sha256; a folder's is the sha256 of its sorted (relative path, file sha256) list."""
        if path.is_file():
            return self.file(path)
        if not path.is_dir():
            raise FileNotFoundError(path)
        entries = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d != STATE_DIR)
            for name in sorted(files):
                if name in VOLATILE or name.endswith(".tmp"):
                    continue
                full = Path(root) / name
                entries.append([full.relative_to(path).as_posix(), self.file(full, portable=True)])
        return "dir:" + digest(entries)

    def save(self) -> None:
        if self.cache_file is not None and self.dirty and not self.readonly:
            with atomic_write(self.cache_file, "w", encoding="utf-8") as fh:
                json.dump(self.cache, fh, sort_keys=True)
            self.dirty = False


class StepStates:
    """``<state>/steps/<name>.json``: the fingerprint a step ran with, its output hash and its summary."""

    def __init__(self, state_dir: Path):
        self.dir = state_dir / "steps"

    def get(self, name: str) -> dict | None:
        f = self.dir / f"{name}.json"
        if not f.is_file():
            return None
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None       # a damaged state file only costs a rerun of that step

    def put(self, name: str, state: dict) -> None:
        with atomic_write(self.dir / f"{name}.json", "w", encoding="utf-8") as fh:
            json.dump(state, fh, sort_keys=True, indent=2, default=str)

    def drop(self, name: str) -> None:
        (self.dir / f"{name}.json").unlink(missing_ok=True)
