"""Readers and writers at the edges: every format in, ``Record`` out, and back.

Readers stream (JSONL line by line, JSON lists element by element, datasets row by row), auto-detect the
format by sniffing the first row and say what they picked and why. Writers stream into a temporary file
renamed at the end. A row that a target format cannot hold is an error naming the row, never dropped.
"""

from __future__ import annotations

import codecs
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import FormatError, RowError
from ..records import BAD_JSON, Record, make_record, record_error
from ._json import check_not_empty, diagnose_line, first_char, iter_json_array, iter_jsonl
from .atomic import atomic_write
from .registry import ALL_NAMES, FORMATS, format_for_output, get, sniff_row
from .rejects import RejectsWriter
from .tables import read_rows

__all__ = [
    "ALL_NAMES", "FORMATS", "Detected", "ReadStats", "RecordReader", "RecordWriter", "RejectsWriter",
    "atomic_write", "detect_format", "read_records", "read_rows", "write_records",
]


@dataclass(frozen=True)
class Detected:
    format: str
    container: str      # jsonl | json | dir | parquet
    reason: str

    def sentence(self, path: Path) -> str:
        return f"{path}: reading as {self.format} ({self.reason})"


def detect_format(path: str | Path, fmt: str | None = None) -> Detected:
    """Pick the format of ``path``: forced by ``fmt`` or sniffed from the container and first row."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file or directory")
    if path.is_dir() or path.suffix.lower() == ".parquet":
        if fmt not in (None, "hf"):
            raise FormatError(f"{path}: a {'folder' if path.is_dir() else 'parquet file'} can only be read as hf")
        return Detected("hf", "dir" if path.is_dir() else "parquet",
                        "forced with --from" if fmt else "a datasets folder" if path.is_dir() else "a parquet file")
    check_not_empty(path)
    container = "json" if first_char(path) == "[" else "jsonl"
    if fmt is not None:
        get(fmt)
        if fmt == "hf":
            raise FormatError(f"{path}: hf needs a datasets folder or a parquet file")
        return Detected(fmt, container, "forced with --from")
    first = _first_row(path, container)
    name = sniff_row(first)
    if name is None:
        keys = sorted(first) if isinstance(first, dict) else type(first).__name__
        raise FormatError(f"{path}: unknown format; the first row has keys {keys}. Expected one of: "
                          + "; ".join(f"{f.name} = {f.description}" for f in FORMATS.values())
                          + ". Force one with --from.")
    what = "a JSON list" if container == "json" else "JSON lines"
    return Detected(name, container, f"{what}; first row looks like {name}")


def _first_row(path: Path, container: str) -> Any:
    if container == "json":
        for _, obj in iter_json_array(path):
            return obj
        raise FormatError(f"{path}: the JSON list is empty; cannot tell its format (use --from)")
    # Sniff from the first line that parses, so one broken line at the top does not stop a reader in skip
    # mode (the reader reports that line itself); a file whose first lines are all broken is refused.
    first_err = None
    for n, (_, obj, err) in enumerate(iter_jsonl(path)):
        if err is None:
            return obj
        first_err = first_err or err
        if n >= _SNIFF_TRIES:
            break
    if first_err is not None:
        raise first_err
    raise RowError("empty-file", "file is empty", file=str(path))


_SNIFF_TRIES = 100


@dataclass
class ReadStats:
    read: int = 0
    ok: int = 0
    rejected: Counter = field(default_factory=Counter)


class RecordReader:
    """Iterate the records of one file. ``on_error="fail"`` raises the first ``RowError`` (with file and
    line); ``"skip"`` counts it in ``stats.rejected`` and writes it to ``rejects`` when given."""

    def __init__(self, path: str | Path, fmt: str | None = None, *, on_error: str = "fail",
                 rejects: RejectsWriter | None = None, source: str | None = None):
        if on_error not in ("fail", "skip"):
            raise FormatError(f"on_error must be fail or skip, not {on_error!r}")
        self.path = Path(path)
        self.detected = detect_format(self.path, fmt)
        self.format = self.detected.format
        self.on_error = on_error
        self.rejects = rejects
        self.source = source
        self.stats = ReadStats()
        # Where the record last yielded came from (line for text files, row for datasets), so callers
        # that check more than the schema (validate, convert) can name it.
        self.line: int | None = None
        self.row: int | None = None

    def __iter__(self) -> Iterator[Record]:
        if self.format == "canonical" and self.detected.container == "jsonl":
            rows = self._canonical_jsonl()
        else:
            rows = self._generic()
        return rows if self.source is None else self._with_source(rows)

    def _with_source(self, rows: Iterator[Record]) -> Iterator[Record]:
        for rec in rows:
            if not rec.source:
                rec.source = self.source
            yield rec

    def _reject(self, err: RowError, data: Any) -> None:
        if self.on_error == "fail":
            raise err
        self.stats.rejected[err.reason] += 1
        if self.rejects is not None:
            self.rejects.write(err, data)

    def _canonical_jsonl(self) -> Iterator[Record]:
        # Fast path, the one a pipeline spends its time in: pydantic parses and validates the raw bytes in
        # one go, called without the model_validate_json wrapper, one generator deep.
        validate = Record.__pydantic_validator__.validate_json
        stats = self.stats
        with open(self.path, "rb") as fh:
            lineno = 0
            for raw in fh:
                lineno += 1
                if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                # isspace() stops at the first non-blank byte; strip() would copy every line.
                if not raw or raw.isspace():
                    continue
                stats.read += 1
                try:
                    rec = validate(raw)
                except ValidationError as exc:
                    kind = exc.errors(include_url=False)[0]["type"]
                    err = diagnose_line(raw, self.path, lineno) if kind.startswith("json") else record_error(
                        exc, file=str(self.path), line=lineno)
                    self._reject(err, raw)
                    continue
                stats.ok += 1
                self.line = lineno
                yield rec

    def _raw(self) -> Iterator[tuple[int | None, int | None, Any, RowError | None]]:
        """(line, row, object, error) for each raw row, whatever the container."""
        container = self.detected.container
        if container == "jsonl":
            for lineno, obj, err in iter_jsonl(self.path):
                yield lineno, None, obj, err
        elif container == "json":
            for lineno, obj in iter_json_array(self.path):
                yield lineno, None, obj, None
        else:
            from .hf import iter_hf_records

            for row, obj in iter_hf_records(self.path):
                yield None, row, obj, None

    def _generic(self) -> Iterator[Record]:
        name = str(self.path)
        parse = FORMATS[self.format].parse if self.format != "hf" else None
        for lineno, row, obj, err in self._raw():
            self.stats.read += 1
            if err is not None:
                self._reject(err, obj)
                continue
            try:
                data = parse(obj) if parse else _parse_any(obj)
                rec = make_record(data, file=name, line=lineno, row=row)
            except RowError as exc:
                self._reject(exc.located(file=name, line=lineno, row=row), obj)
                continue
            self.stats.ok += 1
            self.line, self.row = lineno, row
            yield rec


def _parse_any(obj: Any) -> dict:
    name = sniff_row(obj)
    if name is None:
        raise RowError(BAD_JSON, f"row does not look like any record format (keys {sorted(obj)})")
    return FORMATS[name].parse(obj)


def read_records(path: str | Path, fmt: str | None = None, **kwargs: Any) -> RecordReader:
    return RecordReader(path, fmt, **kwargs)


# The serializer behind model_dump_json, called directly: bytes out, no str round trip.
_to_json = Record.__pydantic_serializer__.to_json


class RecordWriter:
    """Write records to ``path`` in ``fmt`` (or the format the file name implies), atomically.

    Use as a context manager; the file appears only when the block exits without an exception.
    ``lean`` drops instructkit's extra keys (source, task, meta) from foreign formats.
    """

    def __init__(self, path: str | Path, fmt: str | None = None, *, lean: bool = False,
                 image_root: str | Path | None = None):
        self.path = Path(path)
        self.format, self.container = format_for_output(self.path, fmt)
        self.lean = lean
        self.image_root = Path(image_root) if image_root else None
        self.count = 0
        self._cm = None
        self._fh = None
        self._hf_buffer: list[Record] | None = None
        self._dump = None if self.format in ("canonical", "hf") else FORMATS[self.format].dump

    def __enter__(self) -> RecordWriter:
        if self.format == "hf":
            self._cm = _HFSpool(self)
        else:
            self._cm = atomic_write(self.path, "wb")
        self._fh = self._cm.__enter__()
        if self.container == "json":
            self._fh.write(b"[")
        elif self.format == "canonical":
            self.write = self._write_canonical_jsonl  # type: ignore[method-assign]  # the hot path
        return self

    def _write_canonical_jsonl(self, record: Record) -> None:
        self._fh.write(_to_json(record) + b"\n")
        self.count += 1

    def write(self, record: Record) -> None:
        if self._dump is None:
            if self.format == "hf" and record.images:
                from .hf import check_embeddable

                try:
                    check_embeddable(record.images, self.image_root)
                except RowError as exc:
                    raise exc.located(file=str(self.path), row=self.count) from None
            data = _to_json(record)
        else:
            try:
                obj = self._dump(record, self.lean)
            except RowError as exc:
                raise exc.located(file=str(self.path), row=self.count) from None
            import orjson

            data = orjson.dumps(obj)
        if self.container == "json":
            self._fh.write((b"\n" if self.count == 0 else b",\n") + data)
        else:
            self._fh.write(data + b"\n")
        self.count += 1

    def write_all(self, records: Iterable[Record]) -> int:
        for rec in records:
            self.write(rec)
        return self.count

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None and self.container == "json":
            self._fh.write(b"\n]\n")
        self._cm.__exit__(*exc)


class _HFSpool:
    """HF output: spool canonical JSONL to a temp file, then stream it into a dataset on success."""

    def __init__(self, writer: RecordWriter):
        self.writer = writer
        import tempfile

        self._tmp = tempfile.NamedTemporaryFile(prefix="instructkit-hf-", suffix=".jsonl", delete=False)

    def __enter__(self):
        return self._tmp

    def __exit__(self, *exc: Any) -> None:
        import os

        self._tmp.close()
        try:
            if exc[0] is None:
                from .hf import write_hf

                write_hf(Path(self._tmp.name), self.writer.path, self.writer.container, self.writer.image_root)
        finally:
            os.unlink(self._tmp.name)


def write_records(records: Iterable[Record], path: str | Path, fmt: str | None = None, **kwargs: Any) -> int:
    with RecordWriter(path, fmt, **kwargs) as writer:
        return writer.write_all(records)
