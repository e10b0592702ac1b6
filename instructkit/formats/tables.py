"""Raw input rows (not records) for sources such as ``adapt``'s generic reader: JSONL, a JSON list, CSV,
TSV and parquet, each yielded as ``(line or row number, dict)``."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import FormatError, RowError
from ..records import BAD_JSON, EMPTY_FILE, WRONG_TYPE
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
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            if not reader.fieldnames:
                raise RowError(EMPTY_FILE, "no header row", file=str(path), line=1)
            for row in reader:
                if None in row:
                    raise RowError(BAD_JSON, f"more fields than the {len(reader.fieldnames)} in the header",
                                   file=str(path), line=reader.line_num)
                yield reader.line_num, row
    except UnicodeDecodeError as exc:
        raise RowError("not-utf8", f"bytes that are not UTF-8 ({exc.reason})", file=str(path)) from None


def _parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        for item in batch.to_pylist():
            yield row, item
            row += 1
