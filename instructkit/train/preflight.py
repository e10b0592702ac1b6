"""Preflight: render and tokenise every row before any weight is loaded, and fail loudly on rows that
would train on nothing (zero supervised tokens), on image-token mismatches and on ``--max-length``
smaller than one image. Rows longer than ``--max-length`` are dropped and counted (truncating through
image tokens breaks the model, and truncating an answer trains on half of it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import RowError, UsageError
from ..records import Record
from .chat import Encoder, image_runs, render_marked

FATAL = {"zero-labels", "template-mismatch", "image-token-mismatch", "image-token-labelled"}


@dataclass
class Preflight:
    lengths: dict[int, int] = field(default_factory=dict)        # kept rows: index -> tokens
    supervised: dict[int, int] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)             # reason -> rows
    dropped_rows: list[tuple[int, str, str]] = field(default_factory=list)   # (row, reason, message)
    samples: list[str] = field(default_factory=list)
    image_tokens: int | None = None                               # tokens per image (first run seen)
    # Where row i came from: (file, "line N" or "row N") when the caller knows; else rows are numbered
    # across everything read.
    where: Callable[[int], tuple[str, str]] | None = None

    def label(self, i: int) -> str:
        if self.where is None:
            return f"row {i}"
        file, at = self.where(i)
        return f"{file} {at}"

    def to_dict(self) -> dict:
        lens = sorted(self.lengths.values())
        return {"rows_kept": len(lens), "dropped": dict(self.dropped),
                "supervised_tokens": sum(self.supervised.values()), "tokens": sum(lens),
                "length": length_stats(lens), "image_tokens_per_image": self.image_tokens}


def length_stats(lens: Sequence[int]) -> dict:
    if not lens:
        return {}
    s = sorted(lens)

    def pct(q: float) -> int:
        return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]

    return {"min": s[0], "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": s[-1],
            "mean": round(sum(s) / len(s), 1)}


def run_preflight(records: Sequence[Record], encoder: Encoder, *, max_length: int, on_error: str = "fail",
                  preview: int = 2, progress: Callable[[str], None] | None = None,
                  where: Callable[[int], tuple[str, str]] | None = None) -> Preflight:
    pf = Preflight(where=where)
    fatal: list[RowError] = []
    for i, rec in enumerate(records):
        try:
            enc = encoder.encode(rec, i)
        except RowError as err:
            if err.reason in FATAL:
                fatal.append(err)
                continue
            if on_error == "fail":
                raise
            pf.dropped[err.reason] += 1
            pf.dropped_rows.append((i, err.reason, err.detail))
            continue
        if encoder.is_vlm and rec.images:
            runs = image_runs(enc.input_ids, encoder.image_token_id)
            if pf.image_tokens is None:
                pf.image_tokens = runs[0]
            if max(runs) > max_length:
                raise UsageError(f"--max-length {max_length} is smaller than one image's tokens "
                                 f"({max(runs)} tokens, row {i}); raise --max-length")
        if enc.length > max_length:
            pf.dropped["over-max-length"] += 1
            pf.dropped_rows.append((i, "over-max-length", f"{enc.length} tokens > --max-length {max_length}"))
            continue
        pf.lengths[i] = enc.length
        pf.supervised[i] = enc.supervised
        if len(pf.samples) < preview:
            pf.samples.append(f"{pf.label(i)} ({rec.modality}, {rec.source or '?'}, {enc.length} tokens, "
                              f"{enc.supervised} with loss):\n"
                              + render_marked(enc, encoder.tokenizer, encoder.image_token_id))
        if progress and (i + 1) % 1000 == 0:
            progress(f"preflight: {i + 1} rows")
    if fatal:
        first = fatal[0]
        reasons = Counter(e.reason for e in fatal)
        raise RowError(first.reason, f"{len(fatal)} row(s) cannot be trained on "
                       f"({', '.join(f'{k}: {v}' for k, v in reasons.items())}); first: {first.detail}",
                       row=first.row)
    if not pf.lengths:
        raise UsageError("no row left to train on after preflight "
                         f"(dropped: {', '.join(f'{k}: {v}' for k, v in pf.dropped.items()) or 'none'})")
    return pf


def format_report(pf: Preflight, template_note: str) -> list[str]:
    d = pf.to_dict()
    lines = [f"template: {template_note}",
             f"rows kept: {d['rows_kept']}; tokens: {d['tokens']}; with loss: {d['supervised_tokens']}",
             "length: " + ", ".join(f"{k} {v}" for k, v in d["length"].items())]
    if d["image_tokens_per_image"] is not None:
        lines.append(f"tokens per image: {d['image_tokens_per_image']}")
    for reason, n in pf.dropped.items():
        rows = [r for r, why, _ in pf.dropped_rows if why == reason][:10]
        if pf.where is None:
            examples = "rows " + ", ".join(map(str, rows))
        else:
            by_file: dict[str, list[str]] = {}
            for r in rows:
                file, at = pf.where(r)
                by_file.setdefault(file, []).append(at)
            examples = "; ".join(f"{file} {_plural(ats)}" for file, ats in by_file.items())
        lines.append(f"dropped ({reason}): {n} row(s), e.g. {examples}")
    for s in pf.samples:
        lines.append("--- " + s)
    return lines


def _plural(ats: list[str]) -> str:
    """["line 2", "line 5"] -> "lines 2, 5" (mixed kinds are listed as they are)."""
    kinds = {a.split(" ", 1)[0] for a in ats}
    if len(kinds) != 1 or len(ats) == 1:
        return ", ".join(ats)
    return f"{kinds.pop()}s " + ", ".join(a.split(" ", 1)[1] for a in ats)
