"""Raw input rows (not records) for sources such as ``adapt``'s generic reader: JSONL, a JSON list, CSV,
TSV and parquet, each yielded as ``(line or row number, dict)``."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import FormatError, RowError
from ..records import BAD_JSON, EMPTY_FILE, NOT_UTF8, WRONG_TYPE
from ._json import check_not_empty, first_char, iter_json_array, iter_jsonl


def read_rows(path: str | Path, fmt: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file or directory")
    kind = fmt or table_kind(path)
    if kind == "parquet":
        yield from _parquet(path)
    elif kind == "hf":
        from .hf import iter_hf_dicts

        yield from iter_hf_dicts(path)
    elif kind in ("csv", "tsv"):
        yield from _delimited(path, "\t" if kind == "tsv" else ",")
    elif kind in ("json", "jsonl"):
        check_not_empty(path)
        if first_char(path) == "[":
            for line, obj in iter_json_array(path):
                yield line, _as_dict(obj, path, line)
        else:
            for line, obj, err in iter_jsonl(path):
                if err is not None:
                    raise err
                yield line, _as_dict(obj, path, line)
    else:
        raise FormatError(f"{path}: unknown table format {kind!r} (csv, tsv, json, jsonl, parquet, hf)")


def table_kind(path: Path) -> str:
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".parquet", ".jsonl", ".json"):
        return suffix[1:]
    if suffix == ".tab":
        return "tsv"
    char = first_char(path)
    if char in ("[", "{"):
        return "json"
    raise FormatError(f"{path}: cannot tell the table format; use .csv, .tsv, .jsonl, .json or .parquet")


def _as_dict(obj: Any, path: Path, line: int) -> dict:
    if not isinstance(obj, dict):
        raise RowError(WRONG_TYPE, f"expected a JSON object, got {type(obj).__name__}", file=str(path), line=line)
    return obj


def _delimited(path: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    check_not_empty(path)
    reader = csv.DictReader(_text_lines(path), delimiter=delimiter)
    if not reader.fieldnames:
        raise RowError(EMPTY_FILE, "no header row", file=str(path), line=1)
    # line_num is where a row ends; a quoted field can span lines, and the row is named by where it starts.
    end = reader.line_num
    for row in reader:
        start, end = end + 1, reader.line_num
        if None in row:
            raise RowError(BAD_JSON, f"more fields than the {len(reader.fieldnames)} in the header",
                           file=str(path), line=start)
        yield start, row


def _text_lines(path: Path) -> Iterator[str]:
    """The file's lines decoded one by one, so bytes that are not UTF-8 are reported with their line."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RowError(NOT_UTF8, f"bytes that are not UTF-8 at column {exc.start + 1}", file=str(path),
                               line=lineno) from None


def _parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        for item in batch.to_pylist():
            yield row, item
            row += 1
