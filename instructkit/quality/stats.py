"""`instructkit stats`: what a record file holds, in one streaming pass.

Counted per row: task, source, modality, turns, images; per turn: instruction and response length in words
(``text.words``: Unicode-aware, CJK characters one word each); over all instructions: distinct-1 / distinct-2
(distinct word n-grams / all n-grams) and the unique-instruction ratio (distinct normalised instructions /
instructions); template ids from ``meta["template_id"]`` or ``meta["template"]`` (or each distinct id in
``meta["templates"]``, which merged rows carry: such a row counts once per template); verb–noun pairs
(``verbs.verb_noun``, a heuristic); image sizes from headers only (``images.check_image``).

Memory: distributions are Counters of distinct values; diversity needs the set of distinct n-grams and of
instruction hashes (8 bytes of blake2b each), which is what the measure is, so it grows with the vocabulary
and the number of distinct instructions; image verdicts are cached per distinct path. The gallery for the
HTML report is a seeded reservoir sample, so the same file and seed pick the same rows.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RowError, UsageError
from ..formats import RecordReader
from ..images import check_image, resolve
from ..records import Record, is_url
from .dist import IntDist
from .text import instructions, normalise, responses, words
from .verbs import verb_noun

TEMPLATE_KEYS = ("template_id", "template")
TEMPLATE_LIST_KEY = "templates"     # adapt --merge-by-image: one template id per merged turn


def row_templates(meta: dict) -> list[str]:
    """The distinct template ids a row was made with, in first-use order (a merged row may use several;
    it counts once for each)."""
    tid = next((meta[k] for k in TEMPLATE_KEYS if isinstance(meta.get(k), str)), None)
    if tid:
        return [tid]
    many = meta.get(TEMPLATE_LIST_KEY)
    if isinstance(many, list):
        return list(dict.fromkeys(t for t in many if isinstance(t, str) and t))
    return []


@dataclass
class StatsResult:
    """``data`` is the JSON-able summary; ``samples`` the gallery rows; ``image_root`` where images live."""

    data: dict
    samples: list[Record] = field(default_factory=list)
    image_root: Path | None = None


class _Collector:
    def __init__(self, image_root: Path | None, check_images: bool, top: int, sample: int, seed: int):
        self.image_root = image_root
        self.check_images = check_images
        self.top = top
        self.rows = 0
        self.tasks: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.modality: Counter[str] = Counter()
        self.templates: Counter[str] = Counter()
        self.turns = IntDist()
        self.instr_words = IntDist()
        self.resp_words = IntDist()
        self.images_per_row = IntDist()
        self.unigrams: set[str] = set()
        self.bigrams: set[tuple[str, str]] = set()
        self.n_unigrams = 0
        self.n_bigrams = 0
        self.instr_hashes: set[bytes] = set()
        self.n_instr = 0
        self.kinds: Counter[str] = Counter()
        self.verbs: Counter[str] = Counter()
        self.pairs: Counter[str] = Counter()
        self.openers: Counter[str] = Counter()
        self.image_verdicts: dict[str, Any] = {}
        self.widths = IntDist()
        self.heights = IntDist()
        self.formats: Counter[str] = Counter()
        self.image_problems: Counter[str] = Counter()
        self.rows_with_bad_images = 0
        self.urls = 0   # image references that are URLs: nothing local to open
        self.rng = random.Random(seed)
        self.sample = sample
        self.text_sample = max(1, sample // 4) if sample else 0
        self.seen_image_rows = 0
        self.seen_text_rows = 0
        self.image_reservoir: list[tuple[int, Record]] = []
        self.text_reservoir: list[tuple[int, Record]] = []

    def add(self, rec: Record) -> None:
        self.rows += 1
        self.tasks[rec.task or "(none)"] += 1
        self.sources[rec.source or "(none)"] += 1
        self.modality[rec.modality] += 1
        for tid in row_templates(rec.meta) or ("(none)",):
            self.templates[tid] += 1
        self.turns.add(len(rec.turns()))
        self.images_per_row.add(len(rec.images))
        for text in instructions(rec):
            self._instruction(text)
        for text in responses(rec):
            self.resp_words.add(len(words(text)))
        if rec.images and self.check_images:
            self._images(rec)
        self._reservoir(rec)

    def _instruction(self, text: str) -> None:
        toks = words(text)
        self.instr_words.add(len(toks))
        self.n_instr += 1
        self.instr_hashes.add(hashlib.blake2b(normalise(text).encode(), digest_size=8).digest())
        self.unigrams.update(toks)
        self.n_unigrams += len(toks)
        if len(toks) > 1:
            self.bigrams.update(zip(toks, toks[1:]))
            self.n_bigrams += len(toks) - 1
        kind, verb, noun = verb_noun(text)
        self.kinds[kind] += 1
        if kind == "pair":
            self.verbs[verb] += 1
            self.pairs[f"{verb} {noun}"] += 1
        elif kind == "question":
            self.openers[verb] += 1

    def _images(self, rec: Record) -> None:
        bad = False
        for path in rec.images:
            if is_url(path):
                self.urls += 1
                continue
            verdict = self.image_verdicts.get(path)
            if verdict is None:
                try:
                    info = check_image(resolve(path, self.image_root))
                    verdict = (info.width, info.height, info.format)
                    self.widths.add(info.width)
                    self.heights.add(info.height)
                    self.formats[info.format] += 1
                except RowError as exc:
                    verdict = exc.reason
                    self.image_problems[exc.reason] += 1
                self.image_verdicts[path] = verdict
            bad = bad or isinstance(verdict, str)
        self.rows_with_bad_images += bad

    def _reservoir(self, rec: Record) -> None:
        # Algorithm R, one reservoir per modality so a mostly-text file still shows its images.
        if rec.images:
            self.seen_image_rows += 1
            _offer(self.image_reservoir, self.sample, self.seen_image_rows, rec, self.rows, self.rng)
        else:
            self.seen_text_rows += 1
            _offer(self.text_reservoir, self.text_sample, self.seen_text_rows, rec, self.rows, self.rng)

    def result(self) -> dict:
        pairs_total = self.kinds["pair"]
        return {
            "rows": self.rows,
            "tasks": _top(self.tasks, None),
            "sources": _top(self.sources, None),
            "modality": _top(self.modality, None),
            "templates": _top(self.templates, self.top),
            "turns_per_row": {**self.turns.summary(), "counts": _int_counts(self.turns)},
            "instruction_words": {**self.instr_words.summary(), "histogram": self.instr_words.histogram()},
            "response_words": {**self.resp_words.summary(), "histogram": self.resp_words.histogram()},
            "diversity": {
                "instructions": self.n_instr,
                "unique_instructions": len(self.instr_hashes),
                "unique_instruction_ratio": _ratio(len(self.instr_hashes), self.n_instr),
                "distinct_1": _ratio(len(self.unigrams), self.n_unigrams),
                "distinct_2": _ratio(len(self.bigrams), self.n_bigrams),
            },
            "verb_noun": {
                "kinds": {k: self.kinds[k] for k in ("pair", "question", "other")},
                "pairs": pairs_total,
                "distinct_verbs": len(self.verbs),
                "distinct_pairs": len(self.pairs),
                "top_verbs": _top(self.verbs, self.top),
                "top_pairs": _top(self.pairs, self.top),
                "question_openers": _top(self.openers, self.top),
            },
            "images": {
                "per_row": {**self.images_per_row.summary(), "counts": _int_counts(self.images_per_row)},
                "checked": self.check_images,
                "distinct": len(self.image_verdicts),
                "url_references": self.urls,
                "ok": self.widths.n,
                "problems": dict(self.image_problems),
                "rows_with_bad_images": self.rows_with_bad_images,
                "formats": _top(self.formats, None),
                "width": {**self.widths.summary(), "histogram": self.widths.histogram()},
                "height": {**self.heights.summary(), "histogram": self.heights.histogram()},
            },
        }

    def samples(self) -> list[Record]:
        chosen = sorted(self.image_reservoir + self.text_reservoir, key=lambda t: t[0])
        return [rec for _, rec in chosen]


def _offer(reservoir: list, size: int, seen: int, rec: Record, position: int, rng: random.Random) -> None:
    if size <= 0:
        return
    if len(reservoir) < size:
        reservoir.append((position, rec))
        return
    j = rng.randrange(seen)
    if j < size:
        reservoir[j] = (position, rec)


def _top(counter: Counter, n: int | None) -> dict[str, int]:
    # Ties broken by name so output is deterministic.
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(items if n is None else items[:n])


def _int_counts(d: IntDist) -> dict[str, int]:
    return {str(k): d.counts[k] for k in sorted(d.counts)}


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 6) if b else None


def collect_stats(path: str | Path, *, fmt: str | None = None, image_root: str | Path | None = None,
                  check_images: bool = True, top: int = 20, sample: int = 12, seed: int = 0) -> StatsResult:
    """Read ``path`` once and measure it. Unreadable rows are counted by reason, not fatal."""
    if top < 1:
        raise UsageError("--top must be at least 1")
    if sample < 0:
        raise UsageError("--sample must be 0 or more")
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.resolve().parent
    reader = RecordReader(path, fmt, on_error="skip")
    col = _Collector(root, check_images, top, sample, seed)
    for rec in reader:
        col.add(rec)
    data = {"file": str(path), "format": reader.format, "detected": reader.detected.sentence(path),
            "read": reader.stats.read, "unreadable": dict(reader.stats.rejected), **col.result()}
    return StatsResult(data, col.samples(), root)


def stats_job(path: str | Path, *, fmt: str | None = None, image_root: str | Path | None = None,
              check_images: bool = True, top: int = 20, sample: int = 12, seed: int = 0,
              html: str | Path | None = None, title: str | None = None) -> dict:
    """Measure ``path``; with ``html`` also write the self-contained report there. Returns the summary."""
    result = collect_stats(path, fmt=fmt, image_root=image_root, check_images=check_images, top=top,
                           sample=sample, seed=seed)
    if html is not None:
        from .report import write_report

        write_report(result, html, title=title)
    return result.data


def format_stats(data: dict) -> str:
    """Terminal tables for a ``collect_stats`` summary."""
    out: list[str] = []
    out.append(f"{data['file']}: {data['rows']} rows ({data['format']})")
    if data["unreadable"]:
        out.append("unreadable rows: " + ", ".join(f"{k} {v}" for k, v in data["unreadable"].items()))
    for title, key in (("task", "tasks"), ("source", "sources"), ("modality", "modality"),
                       ("template", "templates")):
        out += _table(title, data[key], data["rows"])
    out.append("")
    out += _dist_table([("turns per row", data["turns_per_row"]),
                        ("instruction words", data["instruction_words"]),
                        ("response words", data["response_words"]),
                        ("images per row", data["images"]["per_row"]),
                        ("image width px", data["images"]["width"]),
                        ("image height px", data["images"]["height"])])
    d = data["diversity"]
    out.append("")
    out.append("diversity")
    out.append(f"  instructions            {d['instructions']}")
    out.append(f"  unique instructions     {d['unique_instructions']}  (ratio {_fmt(d['unique_instruction_ratio'])})")
    out.append(f"  distinct-1              {_fmt(d['distinct_1'])}")
    out.append(f"  distinct-2              {_fmt(d['distinct_2'])}")
    vn = data["verb_noun"]
    kinds = vn["kinds"]
    out.append("")
    out.append(f"instruction shapes: verb+object {kinds.get('pair', 0)}, question {kinds.get('question', 0)}, "
               f"other {kinds.get('other', 0)} (heuristic; see docs/stats.md)")
    out += _table("verb + object", vn["top_pairs"], vn["pairs"], "turns")
    out += _table("question opener", vn["question_openers"], kinds.get("question", 0), "turns")
    img = data["images"]
    if img["checked"] and img["distinct"]:
        out.append("")
        probs = ", ".join(f"{k} {v}" for k, v in img["problems"].items()) or "none"
        out.append(f"images: {img['distinct']} distinct files, {img['ok']} readable; problems: {probs}; "
                   f"rows with a bad image: {img['rows_with_bad_images']}")
    return "\n".join(out)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _table(title: str, counts: dict[str, int], total: int, unit: str = "rows") -> list[str]:
    if not counts:
        return []
    width = max(len(title), *(len(k) for k in counts))
    lines = ["", f"{title:<{width}}  {unit:>8}  {'share':>6}"]
    for k, v in counts.items():
        share = f"{100 * v / total:5.1f}%" if total else "    -"
        lines.append(f"{k:<{width}}  {v:>8}  {share:>6}")
    return lines


def _dist_table(rows: list[tuple[str, dict]]) -> list[str]:
    cols = ("n", "min", "mean", "p50", "p90", "p99", "max")
    lines = [f"{'distribution':<18}" + "".join(f"{c:>9}" for c in cols)]
    for name, s in rows:
        cells = ["-" if s[c] is None else (f"{s[c]:.1f}" if isinstance(s[c], float) else str(s[c]))
                 for c in cols]
        lines.append(f"{name:<18}" + "".join(f"{c:>9}" for c in cells))
    return lines
