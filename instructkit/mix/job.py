"""``run_mix``: open the inputs, run a strategy, write the output and its manifest, print the table."""

from __future__ import annotations

import contextlib
import hashlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import RowError, UsageError
from ..formats import RecordWriter, RejectsWriter
from ..formats.atomic import atomic_write
from ..formats.registry import format_for_output
from ..records import Record
from . import manifest as mf
from . import strategies as st
from .entries import count_by_source, is_image
from .rows import RowFiles, bucket_count, external_shuffle
from .scan import Spool, scan_input
from .spec import MixOptions


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def manifest_path_for(output: Path) -> Path:
    return output.with_name(output.stem + ".manifest.json") if output.suffix else output.with_name(
        output.name + ".manifest.json")


def run_mix(options: MixOptions, output: str | Path, *, seed: int = 0, manifest: str | Path | None = None,
            rejects: str | Path | None = None, tmp_dir: str | Path | None = None,
            log: Callable[[str], None] | None = _stderr,
            image_root: str | Path | None = None) -> dict[str, Any]:
    """Mix ``options.inputs`` into ``output`` (atomically) and write the manifest beside it.

    ``image_root`` is where relative image paths point; only HF output needs it, to embed image bytes
    (default: the current folder).

    Returns the manifest (a dict); ``log`` receives the detected formats and the final table.
    """
    log = log or (lambda _m: None)
    options.check()
    output = Path(output)
    out_fmt, container = format_for_output(output, options.to_fmt)
    manifest_path = Path(manifest) if manifest else manifest_path_for(output)
    if tmp_dir is not None and not Path(tmp_dir).is_dir():
        raise UsageError(f"--tmp-dir {tmp_dir} is not a folder")
    for spec in options.inputs:
        if spec.path.resolve() == output.resolve():
            raise UsageError(f"{output}: the output is also an input")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="instructkit-mix-", dir=tmp_dir)))
        rej = None
        if options.on_error == "skip":
            rej_path = Path(rejects) if rejects else output.with_name(output.stem + ".rejects.jsonl")
            rej = stack.enter_context(RejectsWriter(rej_path))
        spool = Spool(tmp / "spool.jsonl")
        seen: set | None = set() if options.dedup else None
        count_tokens = options.temperature is not None and options.weigh_by == "tokens"
        scanned = []
        try:
            for i, spec in enumerate(options.inputs):
                s = scan_input(i, spec, spool, on_error=options.on_error, rejects=rej, seen=seen,
                               count_tokens=count_tokens)
                log(s.detected + f"; {s.valid} rows ({s.image} image, {s.text} text)")
                scanned.append(s)
        finally:
            spool.close()
        seen = None
        mean_row = sum(s.row_bytes for s in scanned) / max(1, sum(s.valid for s in scanned))
        files = RowFiles([s.spec.path for s in scanned], spool.path, row_bytes=mean_row)
        stack.callback(files.close)
        result = _mix(options, scanned, files, seed, tmp)
        rows, image, per_input, digest = _write(result, files, output, out_fmt, image_root)
        unique = result["unique"]() if callable(result["unique"]) else result["unique"]
        data = {
            "instructkit_mix": 1,
            "seed": seed,
            "parameters": options.parameters(),
            "inputs": [mf.input_entry(s, available=result["available_n"][i], emitted=int(per_input[i]),
                                      unique=int(unique[i]), probability=result["probs"][i] if result["probs"]
                                      else None) for i, s in enumerate(scanned)],
            "output": {"path": str(output), "format": out_fmt, "rows": rows, "sha256": digest},
            "totals": mf.totals(rows, image, {s.spec.name: int(per_input[i]) for i, s in enumerate(scanned)}),
            "notes": result["notes"],
        }
        with atomic_write(manifest_path, "wb") as fh:
            fh.write(mf.dumps(data))
    log(mf.table(data) + f"\nmanifest: {manifest_path}")
    return data


def _probabilities(options: MixOptions, scanned: list, available: list) -> list[float] | None:
    sizes = []
    for s, arr in zip(scanned, available):
        n = len(arr) * s.spec.mult
        if options.temperature is not None and options.weigh_by == "tokens":
            n = s.tokens * (len(arr) / s.valid if s.valid else 0.0) * s.spec.mult
        sizes.append(n)
    if options.temperature is not None:
        return st.temperature_weights(sizes, options.temperature, options.temperature_cap)
    if options.inputs[0].weight is not None:
        total = sum(s.spec.weight for s in scanned)
        return [s.spec.weight / total for s in scanned]
    total = sum(sizes)
    return [n / total if total else 0.0 for n in sizes]


def _mix(options: MixOptions, scanned: list, files: RowFiles, seed: int, tmp: Path) -> dict:
    """Run the strategy: entry chunks (or, for the external shuffle, lines) in output order."""
    import numpy as np

    n = len(scanned)
    tally = st.Tally(n)
    notes = tally.notes
    available = []
    for i, s in enumerate(scanned):
        cap = s.spec.cap
        if cap is not None and cap >= s.valid:
            notes.append(f"{s.spec.name}: cap {cap} >= its {s.valid} valid rows; all kept")
        available.append(st.apply_cap(s.entries, cap, st.rng_for(seed, st.CAP, i)))
    names = [s.spec.name for s in scanned]
    out: dict[str, Any] = {"available_n": [len(a) for a in available], "notes": notes, "lines": None, "chunks": None,
                           "unique": tally.unique, "probs": None, "counts": _Counts(n)}
    weighted = options.temperature is not None or options.inputs[0].weight is not None
    if options.strategy == "interleave" and options.batches is None:
        probs = _probabilities(options, scanned, available)
        if sum(p for p, a in zip(probs, available) if len(a)) <= 0:
            raise UsageError("every input with rows has weight 0")
        streams = [st.Stream(a, passes=s.spec.mult, rng=st.rng_for(seed, st.PASS, i), tally=tally, copy=False)
                   for i, (s, a) in enumerate(zip(scanned, available))]
        for s in scanned:
            s.entries = None
        out["probs"] = probs
        out["chunks"] = st.interleave(streams, probs, seed=seed, stopping=options.effective_stopping(),
                                      size=options.size, names=names, tally=tally)
        return out
    if options.size is not None and options.batches is None:
        probs = _probabilities(options, scanned, available) if weighted else None
        weights = probs or [len(a) * s.spec.mult for a, s in zip(available, scanned)]
        targets = st.largest_remainder(options.size, weights)
        out["probs"] = probs
        for i, (t, a) in enumerate(zip(targets, available)):
            if t and not len(a):
                raise UsageError(f"--size {options.size} asks {t} rows of {names[i]}, which has none")
    else:
        targets = [len(a) * s.spec.mult for a, s in zip(available, scanned)]
    bounded = options.shuffle_memory_mb is not None
    # Selection keeps file order (a random subset when down-sampling): every strategy but concat shuffles
    # afterwards anyway, and file order lets whole arrays pass without a copy and the external shuffle
    # read its inputs sequentially. The scanned arrays are handed over (no second reference kept).
    for s in scanned:
        s.entries = None
    selected = st.select(available, targets, ordered=True, seed=seed, tally=tally, copy=False)
    del available[:]
    if options.batches is not None:
        repeats_inside = any(s.spec.mult > 1 for s in scanned)
        if options.batches == "modality":
            gen = st.modality_batches(selected, options.batch_size, seed, tally)
        else:
            tally = st.Tally(n)
            tally.notes = notes
            gen = st.ratio_batches(selected, options.batch_size, options.image_fraction, options.size,
                                   options.allow_repeat, seed, tally)
            out["unique"] = tally.unique
        out["chunks"] = gen
        if repeats_inside or options.batches == "modality":
            kept: list = []

            def keep(chunks):
                for chunk in chunks:
                    if repeats_inside:
                        kept.append(chunk)
                    yield chunk

            def unique():
                if not repeats_inside:       # every pool row distinct: what was written is unique
                    return out["counts"].per_input
                # mult copies sit in the pools: count distinct rows on what was written (8 bytes a row).
                allrows = np.unique(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)
                return count_by_source(allrows, n)

            out["chunks"], out["unique"] = keep(gen), unique
    elif options.strategy == "concat":
        out["chunks"] = st.concat(selected)
    elif options.strategy == "sequential":
        out["chunks"] = st.sequential(selected, options.stage_list(), names, seed)
    elif bounded:
        total = sum(len(a) for a in selected)
        avg = sum(s.row_bytes for s in scanned) / max(1, sum(s.valid for s in scanned))
        k = bucket_count(total, avg, options.shuffle_memory_mb)
        notes.append(f"external shuffle through {k} bucket file(s)")
        out["lines"] = external_shuffle(out["counts"].wrap(st.concat(selected)), files, k, seed, tmp)
    else:
        out["chunks"] = st.shuffle(selected, seed)
    return out


class _Counts:
    """Rows per input and image rows of what is written, counted on the entries."""

    def __init__(self, n: int):
        import numpy as np

        self.n = n
        self.per_input = np.zeros(n, dtype=np.int64)
        self.image = 0

    def add(self, chunk) -> None:
        self.per_input += count_by_source(chunk, self.n)
        self.image += int(is_image(chunk).sum())

    def wrap(self, chunks):
        for chunk in chunks:
            self.add(chunk)
            yield chunk


def _write(result: dict, files: RowFiles, output: Path, out_fmt: str, image_root: str | Path | None = None):
    """Write rows; returns (rows, image rows, rows per input, sha256 of the output or None)."""
    tally: _Counts = result["counts"]
    chunks, lines_iter = result["chunks"], result["lines"]
    counts = {"rows": 0}
    digest = hashlib.sha256() if out_fmt == "canonical" else None

    def batches():
        if lines_iter is not None:
            yield from lines_iter
            return
        for chunk in chunks:
            tally.add(chunk)
            lines = files.rows(chunk)
            files.release()
            yield lines

    if out_fmt == "canonical":
        with atomic_write(output, "wb") as fh:
            for lines in batches():
                data = b"".join(lines)
                fh.write(data)
                digest.update(data)
                counts["rows"] += len(lines)
    else:
        with RecordWriter(output, out_fmt, image_root=image_root) as writer:
            for lines in batches():
                for line in lines:
                    rec = Record.model_validate_json(line)
                    try:
                        writer.write(rec)
                    except RowError as exc:
                        # The output row number alone does not lead back to the input; id and source do.
                        raise RowError(exc.reason, f"{exc.detail} (row id {rec.id!r}, source {rec.source!r})",
                                       file=exc.file, line=exc.line, row=exc.row) from None
                counts["rows"] += len(lines)
    return counts["rows"], tally.image, tally.per_input, digest.hexdigest() if digest else None
