"""Convert a record file from one format to another, streaming, atomically, losing nothing silently.

Every input row ends as an output row or, with ``on_error="skip"``, as a rejects-file row with its reason:
rows the reader rejects (bad JSON, schema rules) and rows the target format cannot hold (two images for
LLaVA, a system turn for Alpaca). With ``on_error="fail"`` the first such row stops the run and the
output file is not touched (writes are atomic).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import RowError, UsageError
from . import RecordReader, RecordWriter
from .registry import format_for_output
from .rejects import RejectsWriter


def default_image_root(path: Path, container: str) -> Path:
    """Where relative image paths point when no root is given: beside the file; for a dataset, the folder
    its embedded images are written to on reading (see ``formats.hf``)."""
    if container in ("dir", "parquet"):
        return path.with_name(path.stem + "_images")
    return path.parent


def default_rejects_path(output: Path) -> Path:
    return output.with_name(output.name + ".rejects.jsonl")


def convert_file(src: str | Path, dst: str | Path, *, from_fmt: str | None = None, to_fmt: str | None = None,
                 image_root: str | Path | None = None, lean: bool = False, on_error: str = "fail",
                 rejects: str | Path | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Convert ``src`` to ``dst``; return the funnel ``{read, written, rejected: {reason: n}, ...}``.

    ``image_root`` is where relative image paths point (default: the folder holding ``src``, or for a
    dataset the folder its images are unpacked to); only the HF writer needs it, to embed image bytes.
    ``rejects`` defaults to ``<dst>.rejects.jsonl`` in skip mode.
    """
    src, dst = Path(src), Path(dst)
    if on_error not in ("fail", "skip"):
        raise UsageError(f"--on-error must be fail or skip, not {on_error!r}")
    if rejects is not None and on_error == "fail":
        raise UsageError("--rejects only makes sense with --on-error skip")
    say = log or (lambda _msg: None)
    rejects_path = Path(rejects) if rejects is not None else default_rejects_path(dst) if on_error == "skip" else None
    if rejects_path is not None and rejects_path.resolve() in (src.resolve(), dst.resolve()):
        raise UsageError(f"the rejects file {rejects_path} would overwrite the input or the output")

    # Check --to before any reading.
    format_for_output(dst, to_fmt)
    sink = RejectsWriter(rejects_path) if rejects_path is not None else None
    unwritable: Counter[str] = Counter()
    if sink is not None:
        sink.__enter__()
    try:
        reader = RecordReader(src, from_fmt, on_error=on_error, rejects=sink)
        say(reader.detected.sentence(src))
        root = Path(image_root) if image_root is not None else default_image_root(src, reader.detected.container)
        writer = RecordWriter(dst, to_fmt, lean=lean, image_root=root)
        with writer:
            for rec in reader:
                try:
                    writer.write(rec)
                except RowError as err:
                    located = RowError(err.reason, f"cannot be written as {writer.format}: {err.detail}",
                                       file=str(src), line=reader.line, row=reader.row)
                    if on_error == "fail":
                        raise located from None
                    unwritable[err.reason] += 1
                    assert sink is not None
                    sink.write(located, rec.model_dump())
    except BaseException as exc:
        if sink is not None:
            sink.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if sink is not None:
        sink.__exit__(None, None, None)

    unpacked = default_image_root(src, reader.detected.container)
    if reader.detected.container in ("dir", "parquet") and unpacked.is_dir():
        # The reader wrote the embedded image bytes there; the output's relative image paths point into it.
        say(f"{src}: images unpacked under {unpacked}; use --image-root {unpacked} with the output")
    rejected = reader.stats.rejected + unwritable
    funnel = {
        "input": str(src), "output": str(dst), "from": reader.format, "to": writer.format,
        "read": reader.stats.read, "written": writer.count, "rejected": dict(sorted(rejected.items())),
        "rejects_file": str(rejects_path) if rejects_path is not None and sum(rejected.values()) else None,
    }
    parts = ", ".join(f"{r} {n}" for r, n in sorted(rejected.items()))
    say(f"read {funnel['read']} -> written {funnel['written']} ({writer.format})"
        + (f"; rejected {sum(rejected.values())}: {parts} -> {rejects_path}" if rejected else ""))
    return funnel
