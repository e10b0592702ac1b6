"""``--num-proc N``: split a JSONL source into N contiguous slices at line boundaries, adapt each in a worker
process, and concatenate the parts in order.

Every random choice is a function of (seed, the item's position in the whole source); each worker is told
the position of its first item, so the output is byte-identical to a one-process run. One pass over the
input finds the slices: it counts items (non-blank lines) and notes a byte offset every ``STEP`` items.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import InstructkitError, RowError, UsageError
from ..formats.atomic import atomic_write

STEP = 4096


def plan(path: Path, n: int, limit: int | None) -> list[tuple[int, int, int, int]]:
    """[(first byte, end byte, line number of the first byte, position of the first item)] per worker."""
    marks = [(0, 1, 0)]           # (byte, line, item) at every STEP-th item
    pos, items, line = 0, 0, 0
    with open(path, "rb") as fh:
        for line, raw in enumerate(fh, 1):
            if limit is not None and items >= limit:
                line -= 1
                break
            if not raw.isspace():
                items += 1
                if items % STEP == 0:
                    marks.append((pos + len(raw), line + 1, items))
            pos += len(raw)
    end = pos
    if items == 0:
        return [(0, end, 1, 0)]
    per = items / n
    cuts = [marks[0]]
    for k in range(1, n):
        target = per * k
        best = min(marks, key=lambda m: abs(m[2] - target))
        if best[2] > cuts[-1][2]:
            cuts.append(best)
    out = []
    for i, (byte, first_line, first_item) in enumerate(cuts):
        stop = cuts[i + 1][0] if i + 1 < len(cuts) else end
        out.append((byte, stop, first_line, first_item))
    return out


def _worker(kwargs: dict) -> dict:
    from .job import run_adapt

    try:
        return {"ok": run_adapt(**kwargs)}
    except RowError as exc:   # RowError's keyword-only __init__ does not survive pickling: send its parts
        return {"row_error": exc.to_dict()}
    except InstructkitError as exc:
        return {"error": str(exc), "type": type(exc).__name__}


def run_parallel(num_proc: int, kwargs: dict, log) -> dict:
    """Run ``run_adapt(**kwargs)`` as ``num_proc`` workers over slices of a JSONL input; merge the funnels."""
    import multiprocessing as mp

    inp, output = Path(kwargs["input"]), Path(kwargs["output"])
    if inp.suffix.lower() != ".jsonl" or not inp.is_file():
        raise UsageError("--num-proc splits JSONL inputs (generic reader); convert other layouts to JSONL or "
                         "use --shard K/N in separate processes")
    if output.suffix.lower() != ".jsonl" or kwargs.get("to") not in (None, "canonical"):
        raise UsageError("--num-proc writes canonical JSONL (the parts are concatenated); convert afterwards")
    for flag in ("merge_by_image", "rewrite", "shard"):
        if kwargs.get(flag):
            raise UsageError(f"--num-proc cannot be combined with --{flag.replace('_', '-')}")
    slices = plan(inp, num_proc, kwargs.get("limit"))
    tmp = Path(tempfile.mkdtemp(prefix=".adapt-parts-", dir=output.parent if output.parent.exists() else None))
    try:
        jobs = []
        for i, (start, end, first_line, first_item) in enumerate(slices):
            kw = dict(kwargs, output=tmp / f"part{i}.jsonl", progress=False, log=None, limit=None,
                      _slice=(start, end, first_line, first_item), quiet=True)
            if kwargs.get("rejects") is not None:
                kw["rejects"] = tmp / f"rejects{i}.jsonl"
            jobs.append(kw)
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(len(jobs)) as pool:
            results = pool.map(_worker, jobs)
        for res in results:           # the first failing slice in input order decides, like one process
            if "row_error" in res:
                d = res["row_error"]
                raise RowError(d["reason"], d["error"], file=d["file"], line=d["line"], row=d["row"])
            if "error" in res:
                raise InstructkitError(res["error"])
        with atomic_write(output, "wb") as fh:
            for i in range(len(jobs)):
                with open(tmp / f"part{i}.jsonl", "rb") as part:
                    shutil.copyfileobj(part, fh, 1 << 22)
        if kwargs.get("rejects") is not None:
            with atomic_write(kwargs["rejects"], "wb") as fh:
                for i in range(len(jobs)):
                    with open(tmp / f"rejects{i}.jsonl", "rb") as part:
                        shutil.copyfileobj(part, fh, 1 << 22)
    finally:
        for p in tmp.glob("*"):
            with contextlib.suppress(OSError):
                os.unlink(p)
        with contextlib.suppress(OSError):
            tmp.rmdir()
    funnels = [r["ok"] for r in results]
    merged: dict[str, Any] = dict(funnels[0])
    merged["output"] = str(output)
    for key in ("read", "produced", "written"):
        merged[key] = sum(f[key] for f in funnels)
    for key in ("rejected", "template_histogram"):
        total: Counter = Counter()
        for f in funnels:
            total.update(f[key])
        merged[key] = dict(sorted(total.items()))
    if kwargs.get("rejects") is not None:
        merged["rejects_file"] = str(kwargs["rejects"])
    merged["num_proc"] = len(jobs)
    return merged
