"""The one pass over each input: validate every row once, normalise it, index it.

Canonical JSONL (the common case, and what the mixer writes) takes a fast path: ``orjson`` parses the
line and a hand-written check applies the ``Record`` rules; a row that passes and already has an id and a
source is copied to the output byte for byte later. Anything the fast check is unsure of goes through
pydantic (``Record.model_validate_json``), which either rejects it with the usual reason and line or accepts
it, in which case it is re-serialised. The fast check only ever accepts rows pydantic accepts: every test it
makes is at least as strict as the model (exact key sets, exact types).

Other formats go through ``RecordReader`` and are spooled as canonical JSONL into a temp file. Either way
the result is an array of entries (see ``entries``): 8 bytes per row.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from ..errors import FormatError, RowError, UsageError
from ..formats import RecordReader, RejectsWriter, detect_format
from ..formats._json import diagnose_line
from ..records import IMAGE_TOKEN, Record, content_id, escapes_root, record_error
from .entries import MAX_SOURCES, OFFSET_MASK, pack
from .spec import InputSpec

BLOCK = 1 << 20
_FIELDS = frozenset(Record.model_fields)
_MSG_FIELDS = frozenset(("role", "content"))
_WS = re.compile(r"\s+")


class Spool:
    """Canonical JSONL for rows that cannot be copied from their input (other formats, filled-in ids or
    sources, CRLF lines); entries point into it with the spool flag."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.size = 0

    def add(self, line: bytes) -> int:
        off = self.size
        self._fh.write(line)
        self.size += len(line)
        return off

    def close(self) -> None:
        self._fh.close()


@dataclass
class Scanned:
    """One input after the scan: its entries and what happened to its rows."""

    number: int
    spec: InputSpec
    format: str
    detected: str
    sha256: str
    entries: Any = None            # numpy int64 array
    read: int = 0
    rejected: Counter = field(default_factory=Counter)
    duplicates: int = 0
    image: int = 0
    text: int = 0
    row_bytes: int = 0
    tokens: int = 0
    valid: int = 0                 # rows indexed (after rejects and duplicates)


def fast_check(d: Any) -> bool:
    """True when ``d`` (parsed JSON) is certainly a valid ``Record`` with every field present."""
    if type(d) is not dict or d.keys() != _FIELDS:
        return False
    images = d["images"]
    msgs = d["messages"]
    if (type(msgs) is not list or not msgs or type(images) is not list or type(d["id"]) is not str
            or type(d["source"]) is not str or type(d["task"]) is not str or type(d["meta"]) is not dict):
        return False
    for p in images:
        # escapes_root only ever says yes to a path containing "..": skip the normpath otherwise.
        if type(p) is not str or (".." in p and escapes_root(p)):
            return False
    placeholders = 0
    expected = "user"
    first = True
    for m in msgs:
        if type(m) is not dict or m.keys() != _MSG_FIELDS:
            return False
        content = m["content"]
        if type(content) is not str:
            return False
        role = m["role"]
        if IMAGE_TOKEN in content:
            placeholders += content.count(IMAGE_TOKEN)
        if first:
            first = False
            if role == "system":
                continue
        # ``not content.strip()`` of the model, without the copy.
        if role != expected or not content or content.isspace():
            return False
        expected = "assistant" if expected == "user" else "user"
    return expected == "user" and msgs[-1]["role"] == "assistant" and placeholders == len(images)


def dedup_key(images: list[str], messages: list[tuple[str, str]]) -> bytes:
    """Exact-duplicate key: image paths plus role and case-folded, whitespace-collapsed text."""
    h = hashlib.blake2b(digest_size=16)
    for p in images:
        h.update(p.encode("utf-8", "surrogatepass") + b"\x1f")
    h.update(b"\x1e")
    for role, content in messages:
        h.update(role.encode() + b"\x1f")
        h.update(_WS.sub(" ", content).strip().casefold().encode("utf-8", "surrogatepass") + b"\x1e")
    return h.digest()


def _words(messages: list[tuple[str, str]]) -> int:
    return sum(len(c.split()) for _, c in messages)


class _Indexer:
    """Shared bookkeeping of one input's scan."""

    def __init__(self, out: Scanned, spool: Spool, seen: set | None, count_tokens: bool):
        self.out = out
        self.spool = spool
        self.seen = seen
        self.count_tokens = count_tokens
        self.needs_text = seen is not None or count_tokens
        self.entries = array("q")
        if out.number >= MAX_SOURCES:
            raise UsageError(f"at most {MAX_SOURCES} inputs can be mixed at once")

    def add(self, offset: int, spooled: bool, images: list[str], messages: list[tuple[str, str]] | None,
            nbytes: int) -> None:
        """``messages`` as (role, content) pairs, needed only for dedup and token counts."""
        if self.seen is not None:
            key = dedup_key(images, messages)
            if key in self.seen:
                self.out.duplicates += 1
                return
            self.seen.add(key)
        if offset > OFFSET_MASK:
            raise RowError("file-too-large", "file is larger than 256 TiB", file=str(self.out.spec.path))
        image = bool(images)
        if image:
            self.out.image += 1
        else:
            self.out.text += 1
        self.out.row_bytes += nbytes
        if self.count_tokens:
            self.out.tokens += _words(messages)
        self.entries.append(pack(offset, self.out.number, image, spooled))

    def add_record(self, rec: Record) -> None:
        line = rec.model_dump_json().encode() + b"\n"
        off = self.spool.add(line)
        msgs = [(m.role, m.content) for m in rec.messages] if self.needs_text else None
        self.add(off, True, rec.images, msgs, len(line))

    def finish(self):
        import numpy as np

        self.out.entries = np.frombuffer(self.entries, dtype=np.int64) if self.entries else np.zeros(
            0, dtype=np.int64)
        self.out.valid = len(self.out.entries)
        return self.out


def scan_input(number: int, spec: InputSpec, spool: Spool, *, on_error: str = "fail",
               rejects: RejectsWriter | None = None, seen: set | None = None,
               count_tokens: bool = False) -> Scanned:
    """Validate and index every row of ``spec.path``; raise the first bad row unless ``on_error="skip"``."""
    try:
        detected = detect_format(spec.path, spec.fmt)
    except FormatError as exc:
        # The shared message speaks of convert's --from; here an input is forced with :fmt=.
        msg = str(exc).replace("Force one with --from.", f"Force one with {spec.path}:fmt=FORMAT.")
        if not msg.startswith(str(spec.path)):
            msg = f"{spec.path}: {msg}"
        raise FormatError(msg) from None
    out = Scanned(number, spec, detected.format, detected.sentence(spec.path), "")
    idx = _Indexer(out, spool, seen, count_tokens)
    if detected.format == "canonical" and detected.container == "jsonl":
        _scan_canonical_jsonl(idx, on_error, rejects)
    else:
        reader = RecordReader(spec.path, spec.fmt, on_error=on_error,
                              rejects=rejects, source=spec.name)
        for rec in reader:
            idx.add_record(rec)
        out.read = reader.stats.read
        out.rejected = Counter(reader.stats.rejected)
        out.sha256 = content_sha256(spec.path)
    return idx.finish()


def _scan_canonical_jsonl(idx: _Indexer, on_error: str, rejects: RejectsWriter | None) -> None:
    out = idx.out
    path = out.spec.path
    name = out.spec.name
    digest = hashlib.sha256()
    loads = orjson.loads
    lineno = 0
    offset = 0

    def handle(line: bytes, off: int) -> None:
        raw = line.strip()
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:].strip()
        if not raw:
            return
        out.read += 1
        try:
            d = loads(raw)
        except orjson.JSONDecodeError:
            d = None
        if d is not None and fast_check(d):
            msgs = [(m["role"], m["content"]) for m in d["messages"]] if idx.needs_text else None
            if d["id"] and d["source"] and len(raw) + 1 == len(line):
                idx.add(off, False, d["images"], msgs, len(line))
                return
            if not d["source"]:
                d["source"] = name
            if not d["id"]:
                d["id"] = content_id(d["images"], [_Msg(m["role"], m["content"]) for m in d["messages"]])
            data = orjson.dumps(d) + b"\n"
            idx.add(idx.spool.add(data), True, d["images"], msgs, len(data))
            return
        try:
            rec = Record.model_validate_json(raw)
        except ValidationError as exc:
            kind = exc.errors(include_url=False)[0]["type"]
            err = (diagnose_line(raw, path, lineno) if kind.startswith("json")
                   else record_error(exc, file=str(path), line=lineno))
            if on_error == "fail":
                raise err from None
            out.rejected[err.reason] += 1
            if rejects is not None:
                rejects.write(err, raw)
            return
        if not rec.source:
            rec.source = name
        idx.add_record(rec)

    if path.stat().st_size > OFFSET_MASK:
        raise RowError("file-too-large", "file is larger than 256 TiB", file=str(path))
    # The common row (valid, id and source set, no text needed) is handled inline: this loop is the
    # mixer's hot path. Anything else goes through ``handle``.
    append = idx.entries.append
    fast = not idx.needs_text
    text_bits = pack(0, out.number, False, False)
    image_bits = pack(0, out.number, True, False)
    n_fast = n_image = fast_bytes = 0
    with open(path, "rb") as fh:
        pending = b""
        while True:
            block = fh.read(BLOCK)
            if not block:
                break
            digest.update(block)
            lines = (pending + block).split(b"\n")
            pending = lines.pop()
            for line in lines:
                lineno += 1
                size = len(line) + 1
                if fast and line[-1:] == b"}" and line[:1] == b"{":
                    try:
                        d = loads(line)
                    except orjson.JSONDecodeError:
                        d = None
                    if d is not None and fast_check(d) and d["id"] and d["source"]:
                        if d["images"]:
                            append(offset | image_bits)
                            n_image += 1
                        else:
                            append(offset | text_bits)
                        n_fast += 1
                        fast_bytes += size
                        offset += size
                        continue
                handle(line + b"\n", offset)
                offset += size
        if pending:
            lineno += 1
            handle(pending, offset)
    out.read += n_fast
    out.image += n_image
    out.text += n_fast - n_image
    out.row_bytes += fast_bytes
    out.sha256 = digest.hexdigest()


class _Msg:
    __slots__ = ("role", "content")

    def __init__(self, role: str, content: str):
        self.role = role
        self.content = content


def content_sha256(path: Path) -> str:
    """sha256 of a file's bytes, streamed; for a folder, of each file's relative name and bytes in order."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f is not path:
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(BLOCK):
                h.update(block)
    return h.hexdigest()
