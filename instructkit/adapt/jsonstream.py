"""Stream one big array out of a JSON *object* file (VQAv2 ``{"questions": [...]}``, TextVQA ``{"data": [...]}``)
or the members of a top-level object (GQA ``{"qid": {...}}``), element by element, with line numbers.

Dataset files of this shape run to hundreds of MB; loading one whole costs several GB of Python objects.
Members other than the streamed one are small (info, license, data_subtype, COCO's ``images``) and are
decoded whole into ``meta``, in the order they appear.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import FormatError, RowError
from ..records import BAD_JSON, NOT_UTF8

CHUNK = 1 << 20
MAX_VALUE = 512 << 20
_WS = " \t\r\n"
_decoder = json.JSONDecoder()


class JsonStream:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta: dict[str, Any] = {}
        self._fh = None
        self._dec = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False

    # -- low level ------------------------------------------------------------------------------------
    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self._fh.read(CHUNK)
        try:
            text = self._dec.decode(data, final=not data)
        except UnicodeDecodeError:
            raise RowError(NOT_UTF8, "bytes that are not UTF-8", file=str(self.path), line=self.line) from None
        if not data:
            self.eof = True
        self.buf = self.buf[self.pos:] + text
        self.pos = 0
        return bool(data) or bool(text)

    def _skip_ws(self) -> str:
        while True:
            buf, pos, n = self.buf, self.pos, len(self.buf)
            while pos < n and buf[pos] in _WS:
                if buf[pos] == "\n":
                    self.line += 1
                pos += 1
            self.pos = pos
            if pos < n:
                return buf[pos]
            if not self._fill():
                return ""

    def _error(self, what: str) -> RowError:
        return RowError(BAD_JSON, what, file=str(self.path), line=self.line)

    def _expect(self, chars: str) -> str:
        c = self._skip_ws()
        if not c or c not in chars:
            found = repr(c) if c else "end of file"
            raise self._error(f"expected {' or '.join(repr(x) for x in chars)}, found {found}")
        self.pos += 1
        return c

    def _value(self) -> Any:
        self._skip_ws()
        while True:
            try:
                obj, end = _decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                # Incomplete because the chunk ended there, or really malformed: more text decides.
                if len(self.buf) - self.pos > MAX_VALUE or not self._fill():
                    try:  # _fill re-based the buffer: locate the error in the current one
                        _decoder.raw_decode(self.buf, self.pos)
                    except json.JSONDecodeError as exc:
                        line = self.line + self.buf.count("\n", self.pos, exc.pos)
                        raise RowError(BAD_JSON, f"malformed JSON: {exc.msg}", file=str(self.path),
                                       line=line) from None
                continue
            if end == len(self.buf) and not self.eof:
                # A number at the very end of the buffer may continue in the next chunk.
                if isinstance(obj, (int, float)) and self._fill():
                    continue
            self.line += self.buf.count("\n", self.pos, end)
            self.pos = end
            return obj

    # -- public ---------------------------------------------------------------------------------------
    def __enter__(self) -> JsonStream:
        try:
            self._fh = open(self.path, "rb")
        except FileNotFoundError:
            raise FormatError(f"{self.path}: no such file") from None
        self._fill()
        if self.buf.startswith("\ufeff"):
            self.pos = 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self._fh.close()

    def keys(self) -> Iterator[str]:
        """Top-level keys; after each yield the caller either calls ``elements()`` or ``value()``."""
        self._expect("{")
        if self._skip_ws() == "}":
            self.pos += 1
            return
        while True:
            key = self._value()
            if not isinstance(key, str):
                raise self._error("expected a string key")
            self._expect(":")
            self._pending = True
            yield key
            if self._pending:
                self.meta[key] = self._value()
            if self._expect(",}") == "}":
                return

    def value(self) -> Any:
        self._pending = False
        return self._value()

    def elements(self) -> Iterator[tuple[int | None, int, Any]]:
        """(line, index, element) for each element of the array that starts here. ``line`` is None from the
        second element on in a file written on one line (the official VQAv2 files are): then only the
        index in the list says where a row is."""
        self._pending = False
        self._expect("[")
        if self._skip_ws() == "]":
            self.pos += 1
            return
        index = 0
        while True:
            self._skip_ws()
            line = self.line if self.line > 1 or index == 0 else None
            yield line, index, self._value()
            index += 1
            if self._expect(",]") == "]":
                return

    def members(self) -> Iterator[tuple[int | None, int, str, Any]]:
        """(line, index, key, value) for each member of a top-level object (GQA's questions dict)."""
        for index, key in enumerate(self.keys()):
            self._skip_ws()
            line = self.line if self.line > 1 or index == 0 else None
            yield line, index, key, self.value()


def stream_array(path: str | Path, key: str, meta: dict | None = None) -> Iterator[tuple[int | None, int, Any]]:
    """Elements of the array under ``key``; other members land in ``meta`` (if given) as they pass."""
    found = False
    with JsonStream(path) as js:
        for k in js.keys():
            if k == key:
                found = True
                if meta is not None:
                    meta.update(js.meta)
                yield from js.elements()
        if meta is not None:
            meta.update(js.meta)
    if not found:
        raise FormatError(f"{path}: no {key!r} list in this file (top-level keys: {', '.join(js.meta) or 'none'})")


def scan_meta(path: str | Path, skip: str) -> dict[str, Any]:
    """All top-level members except the big array ``skip``, which is walked element by element and dropped."""
    with JsonStream(path) as js:
        for k in js.keys():
            if k == skip:
                for _ in js.elements():
                    pass
        return js.meta


def top_keys(path: str | Path, limit: int = 16,
             interesting: tuple[str, ...] = ("questions", "annotations", "data")) -> tuple[list[str], Any]:
    """The first top-level keys of an object file and the first element of the first ``interesting`` list
    (or the first dict value with an ``imageId``: GQA), for sniffing a layout without reading it all."""
    keys: list[str] = []
    with JsonStream(path) as js:
        for k in js.keys():
            keys.append(k)
            c = js._skip_ws()
            if c == "[" and k in interesting:
                for _, _, first in js.elements():
                    return keys, (k, first)
                return keys, (k, None)
            if c == "{":
                value = js.value()
                if isinstance(value, dict) and "imageId" in value:
                    return keys, (k, value)
                continue
            if len(keys) >= limit:
                break
    return keys, None
