"""From entries back to row bytes, and the bounded-memory (external) shuffle."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from .entries import OFFSET_MASK, SOURCE_SHIFT, SPOOL_BIT
from .strategies import CHUNK, rng_for

EXTERNAL = 100          # rng purpose for bucket choice
_KEYS = 1 << 12         # entry >> SOURCE_SHIFT: input number, image bit, spool bit


class RowFiles:
    """Reads rows by entry with ``os.pread``: no memory map, so pages read are not held by the process
    (a map of a shuffled read would pull the whole file into the resident set) and peak memory does not
    grow with the inputs."""

    def __init__(self, inputs: list[Path], spool: Path | None, *, row_bytes: float = 1024):
        # One read usually holds the whole row: a power of two above 1.5x the mean row, 256 B to 64 KiB
        # (a longer row takes more reads; a much larger read costs copying for nothing).
        self.read = 256
        while self.read < min(1.5 * row_bytes, 1 << 16):
            self.read *= 2
        self._fds: dict[Path, int] = {}
        self._lookup: list[int] = [-1] * _KEYS
        spool_key = SPOOL_BIT >> SOURCE_SHIFT
        for key in range(_KEYS):
            n = key & 0x3FF
            path = spool if key & spool_key else (inputs[n] if n < len(inputs) else None)
            if path is not None and path.is_file():
                if path not in self._fds:
                    self._fds[path] = os.open(path, os.O_RDONLY)
                self._lookup[key] = self._fds[path]

    def rows(self, entries) -> list[bytes]:
        """The raw lines (each ending in a newline) of ``entries``, in order."""
        lookup = self._lookup
        pread = os.pread
        size = self.read
        out = []
        append = out.append
        for key, off in zip((entries >> SOURCE_SHIFT).tolist(), (entries & OFFSET_MASK).tolist()):
            fd = lookup[key]
            buf = pread(fd, size, off)
            end = buf.find(b"\n")
            if end < 0:
                buf = _long_line(fd, off, buf)
                end = len(buf) - 1
            append(buf[:end + 1])
        return out

    def release(self) -> None:
        """Nothing held between chunks (kept for callers that batch reads)."""

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _long_line(fd: int, off: int, buf: bytes) -> bytes:
    parts = [buf]
    pos = off + len(buf)
    while True:
        more = os.pread(fd, 1 << 16, pos)
        end = more.find(b"\n")
        if end >= 0 or not more:
            parts.append(more[:end + 1] if end >= 0 else more)
            return b"".join(parts)
        parts.append(more)
        pos += len(more)


def bucket_count(rows: int, row_bytes: float, memory_mb: int) -> int:
    """Buckets so that one bucket, read and split into a list, fits in ``memory_mb``: a bucket's file
    bytes plus the list of lines (about 2 × bytes + 64 bytes a row while splitting)."""
    need = rows * (2 * row_bytes + 64)
    return max(1, -(-int(need) // (memory_mb << 20)))


def external_shuffle(chunks: Iterator, files: RowFiles, buckets: int, seed: int, tmp: Path) -> Iterator[list]:
    """Scatter rows into ``buckets`` temp files (each row's bucket an independent uniform draw), then
    read each bucket, permute it uniformly and yield its lines. Concatenating uniformly permuted buckets
    whose membership was drawn independently and uniformly is a uniformly random permutation of all
    rows (any relabelling of the rows leaves the process unchanged), whatever the number of buckets;
    memory holds one bucket."""
    rng = rng_for(seed, EXTERNAL)
    paths = [tmp / f"bucket-{b:05d}" for b in range(buckets)]
    handles = [open(p, "wb") for p in paths]  # noqa: SIM115 - closed below
    try:
        for chunk in chunks:
            lines = files.rows(chunk)
            groups: list[list[bytes]] = [[] for _ in range(buckets)]
            for line, b in zip(lines, rng.integers(0, buckets, len(lines)).tolist()):
                groups[b].append(line)
            for fh, group in zip(handles, groups):
                if group:
                    fh.write(b"".join(group))
            files.release()
    finally:
        for fh in handles:
            fh.close()
    for b, path in enumerate(paths):
        data = path.read_bytes()
        os.unlink(path)
        lines = data.split(b"\n")
        del data
        lines.pop()                      # after the last newline
        order = rng_for(seed, EXTERNAL, b + 1).permutation(len(lines))
        for start in range(0, len(order), CHUNK):
            yield [lines[i] + b"\n" for i in order[start:start + CHUNK].tolist()]
        del lines
