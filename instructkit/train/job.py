"""The one function the CLI calls: read the data file(s), then preflight (``dry_run``) or train."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import RowError, UsageError
from ..records import Record
from .config import TrainConfig
from .loop import dry_run, train

Origin = tuple[str, int | None, int]      # (file, line when the format has lines, row in that file)


def read_all(paths: Sequence[str | Path], fmt: str | None = None, log: Callable[[str], None] | None = None,
             origins: list[Origin] | None = None) -> list[Record]:
    """Records of every file, in order. Training shuffles and revisits rows across epochs, so the rows
    (text and image paths only; images load lazily per batch) are held in memory. ``origins``, when
    given, receives where each record came from, so that a row error can name its file and line."""
    from ..formats import read_records

    records: list[Record] = []
    for path in paths:
        if not Path(path).exists():
            raise UsageError(f"data file {path} does not exist")
        reader = read_records(path, fmt)
        stem = Path(path).stem
        for k, r in enumerate(reader):
            # Loss is logged per source; rows without one are named after their file.
            records.append(r if r.source else r.model_copy(update={"source": stem}))
            if origins is not None:
                origins.append((str(path), reader.line, k))
        if log:
            log(f"{reader.detected.sentence(Path(path))}; {reader.stats.read} row(s)")
    if not records:
        raise UsageError("no rows to train on")
    return records


def train_job(data: Sequence[str | Path], cfg: TrainConfig, *, fmt: str | None = None, dry: bool = False,
              log: Callable[[str], None] | None = None) -> dict:
    # Under torchrun / accelerate launch only rank 0 talks; the loop re-checks once accelerate is up.
    say = log if log and os.environ.get("RANK", "0") == "0" else (lambda _: None)
    origins: list[Origin] = []
    records = read_all(data, fmt, say, origins)

    def where(i: int) -> tuple[str, str]:
        file, line, row = origins[i]
        return file, f"line {line}" if line is not None else f"row {row}"

    try:
        return dry_run(records, cfg, say, where=where) if dry else train(records, cfg, say, where=where)
    except RowError as err:
        # The stages number rows across all the files read; the user needs the file and its line.
        if err.file is None and err.row is not None and 0 <= err.row < len(origins):
            file, line, row = origins[err.row]
            raise RowError(err.reason, err.detail, file=file, line=line, row=row) from None
        raise
