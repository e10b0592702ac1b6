"""Streaming JSON input: JSONL line by line and JSON lists element by element, with line numbers.

A multi-GB LLaVA list is read with ``raw_decode`` over a sliding window, so memory stays at one element
plus one chunk.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..errors import FormatError, RowError
from ..records import BAD_JSON, EMPTY_FILE, NOT_UTF8

CHUNK = 1 << 20
# An element that still does not parse after this many characters is malformed, not cut short.
MAX_ELEMENT = 256 << 20
_WS = " \t\r\n"

loads = orjson.loads


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def first_char(path: Path) -> str:
    """The first non-whitespace character of a file ('' when empty or whitespace only)."""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(4096)
            if not chunk:
                return ""
            stripped = chunk.lstrip()
            if stripped:
                if stripped.startswith(codecs.BOM_UTF8):
                    stripped = stripped[len(codecs.BOM_UTF8):].lstrip()
                    if not stripped:
                        continue
                return chr(stripped[0])


def check_not_empty(path: Path) -> None:
    if first_char(path) == "":
        raise RowError(EMPTY_FILE, "file is empty", file=str(path))


def iter_jsonl_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, raw line) for each non-blank line."""
    with open(path, "rb") as fh:
        first = fh.readline()
        if first.startswith(codecs.BOM_UTF8):
            first = first[len(codecs.BOM_UTF8):]
        if first and not first.isspace():
            yield 1, first
        # isspace() stops at the first non-blank byte; strip() would copy every line.
        for lineno, line in enumerate(fh, 2):
            if not line.isspace():
                yield lineno, line


def diagnose_line(raw: bytes, path: Path, lineno: int) -> RowError:
    """Explain why a raw line did not parse: bad UTF-8 or bad JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RowError(NOT_UTF8, f"bytes that are not UTF-8 at column {exc.start + 1}", file=str(path),
                        line=lineno)
    text = text.rstrip("\r\n")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        at = "the end of the line" if exc.pos >= len(text) else f"column {exc.colno}"
        return RowError(BAD_JSON, f"malformed JSON: {exc.msg} at {at}", file=str(path), line=lineno)
    return RowError(BAD_JSON, "malformed JSON", file=str(path), line=lineno)


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any, RowError | None]]:
    """Yield (line, object, None) or (line, raw bytes, error) for lines that do not parse."""
    for lineno, raw in iter_jsonl_lines(path):
        try:
            yield lineno, orjson.loads(raw), None
        except orjson.JSONDecodeError:
            yield lineno, raw, diagnose_line(raw, path, lineno)


def iter_json_array(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line where the element starts, element) from a file holding one JSON list.

    A malformed element cannot be skipped (the parser loses its place), so it raises ``RowError``.
    """
    decoder = json.JSONDecoder()
    dec = codecs.getincrementaldecoder("utf-8")()
    buf = ""
    pos = 0
    line = 1
    started = False
    eof = False
    bad_bytes: RowError | None = None
    with open(path, "rb") as fh:

        def fill() -> bool:
            nonlocal buf, pos, eof, bad_bytes
            if bad_bytes is not None:
                raise bad_bytes
            if eof:
                return False
            data = fh.read(CHUNK)
            try:
                text = dec.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                # Keep the valid text before the bad bytes, so the elements before them are still yielded;
                # the error is raised when the parser needs to read past it.
                text = exc.object[: exc.start].decode("utf-8")
                bad_line = line + buf.count("\n", pos) + text.count("\n")
                bad_bytes = RowError(NOT_UTF8, "bytes that are not UTF-8", file=str(path), line=bad_line)
                buf = buf[pos:] + text
                pos = 0
                return True
            if not data:
                eof = True
            buf = buf[pos:] + text
            pos = 0
            return bool(data) or bool(text)

        def skip_ws() -> None:
            nonlocal pos, line
            while True:
                n = len(buf)
                while pos < n and buf[pos] in _WS:
                    if buf[pos] == "\n":
                        line += 1
                    pos += 1
                if pos < n or not fill():
                    return

        fill()
        if buf.startswith("\ufeff"):
            pos = 1
        skip_ws()
        if pos >= len(buf):
            raise RowError(EMPTY_FILE, "file is empty", file=str(path))
        if buf[pos] != "[":
            raise FormatError(f"{path}:{line}: expected a JSON list ('[')")
        pos += 1
        while True:
            skip_ws()
            if pos >= len(buf):
                raise RowError(BAD_JSON, "unexpected end of file inside the JSON list", file=str(path), line=line)
            ch = buf[pos]
            if ch == "]":
                pos += 1
                skip_ws()
                if pos < len(buf):
                    raise RowError(BAD_JSON, "data after the end of the JSON list", file=str(path), line=line)
                return
            if started:
                if ch != ",":
                    raise RowError(BAD_JSON, "expected ',' or ']' between list elements", file=str(path),
                                   line=line)
                pos += 1
                skip_ws()
            started = True
            while True:
                try:
                    obj, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as exc:
                    # Count before fill(), which moves the window and so invalidates exc.pos.
                    bad_line = line + buf.count("\n", pos, exc.pos)
                    # The element may run past the window: read more and try again; at EOF it is malformed.
                    if len(buf) - pos < MAX_ELEMENT and fill():
                        continue
                    raise RowError(BAD_JSON, f"malformed JSON: {exc.msg}", file=str(path), line=bad_line) from None
                # A number at the very end of the window may be cut short ("12" of "123"): read more.
                if end >= len(buf) and not eof and fill():
                    continue
                break
            yield line, obj
            line += buf.count("\n", pos, end)
            pos = end
