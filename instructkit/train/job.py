"""The one function the CLI calls: read the data file(s), then preflight (``dry_run``) or train."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import UsageError
from ..records import Record
from .config import TrainConfig
from .loop import dry_run, train


def read_all(paths: Sequence[str | Path], fmt: str | None = None, log: Callable[[str], None] | None = None
             ) -> list[Record]:
    """Records of every file, in order. Training shuffles and revisits rows across epochs, so the rows
    (text and image paths only; images load lazily per batch) are held in memory."""
    from ..formats import read_records

    records: list[Record] = []
    for path in paths:
        if not Path(path).exists():
            raise UsageError(f"data file {path} does not exist")
        reader = read_records(path, fmt)
        stem = Path(path).stem
        # Loss is logged per source; rows without one are named after their file.
        records.extend(r if r.source else r.model_copy(update={"source": stem}) for r in reader)
        if log:
            log(f"{reader.detected.sentence(Path(path))}; {reader.stats.read} row(s)")
    if not records:
        raise UsageError("no rows to train on")
    return records


def train_job(data: Sequence[str | Path], cfg: TrainConfig, *, fmt: str | None = None, dry: bool = False,
              log: Callable[[str], None] | None = None) -> dict:
    # Under torchrun / accelerate launch only rank 0 talks; the loop re-checks once accelerate is up.
    say = log if log and os.environ.get("RANK", "0") == "0" else (lambda _: None)
    records = read_all(data, fmt, say)
    return dry_run(records, cfg, say) if dry else train(records, cfg, say)
