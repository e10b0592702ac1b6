"""`instructkit filter`: drop bad rows, each drop counted by reason and written to a rejects file.

Filters run cheapest first and a row stops at the first one that drops it:

1. length bounds (words over all user turns / all assistant turns of the row) → ``too-short`` / ``too-long``
2. refusal patterns in assistant turns → ``refusal``
3. leak patterns in assistant turns → ``leak``
4. images, from headers and end markers only (``images.check_image``) → ``image-missing``, ``image-corrupt``,
   ``image-too-small`` (shorter side below ``min_side``), ``image-extreme-aspect`` (long/short above
   ``max_aspect``)
5. exact duplicates: same normalised messages (``text.normalise``) and same image *content* (blake2b of the
   file bytes, so a copy under another name is caught) → ``duplicate``
6. near-duplicate instructions: ROUGE-L F1 of the row's user turns ≥ ``rouge_threshold`` with a kept row's
   (``rouge.RougeIndex``) → ``near-duplicate-text``. Text-only rows are compared with all kept text-only
   rows; image rows only with kept rows on the same image content, because "Describe the image." asked of
   two different photos is not a duplicate.
7. near-duplicate images: an image file whose perceptual hash (``phash``) is within ``phash_distance`` bits
   of an earlier, different image file → ``near-duplicate-image``. Rows that reuse the very same image
   (several questions about one photo) are not near-duplicates of each other; exact dedup covers them.
8. optional CLIP image–text similarity below ``clip_min`` → ``clip-low-similarity`` (``clip.ClipScorer``;
   text = first instruction and first response; a row with several images keeps its best match).

Rows the reader cannot parse are counted by their reader reason (``bad-json``, ``image-count``…). So
``read = unreadable + dropped + kept``, and every row not kept is in the rejects file with its reason.

Memory: dedup keeps a 12-byte digest per kept row, the near-duplicate indexes keep the kept instructions
and one 64-bit hash per distinct image, and image verdicts are cached per distinct path (datasets reuse
one image for many rows); nothing else grows with the input. CLIP holds one batch of rows at a time.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson

from ..errors import RowError, UsageError
from ..formats import RecordReader, RecordWriter, RejectsWriter, atomic_write
from ..images import check_image, resolve
from ..records import IMAGE_CORRUPT, IMAGE_ESCAPES_ROOT, IMAGE_MISSING, Record, is_url
from .patterns import LEAK_PATTERNS, REFUSAL_PATTERNS, compile_patterns
from .phash import HashIndex, phash
from .text import instructions, normalise, responses, words

TOO_SHORT = "too-short"
TOO_LONG = "too-long"
REFUSAL = "refusal"
LEAK = "leak"
IMAGE_TOO_SMALL = "image-too-small"
IMAGE_ASPECT = "image-extreme-aspect"
DUPLICATE = "duplicate"
NEAR_DUP_TEXT = "near-duplicate-text"
NEAR_DUP_IMAGE = "near-duplicate-image"
CLIP_LOW = "clip-low-similarity"

# Rows held back so text-only near-duplicates are decided a window at a time (bounded memory).
_WINDOW = 1024


@dataclass
class FilterConfig:
    """What `instructkit filter` checks. ``None`` turns a bound or a filter off."""

    min_instruction_words: int = 0
    max_instruction_words: int | None = None
    min_response_words: int = 1
    max_response_words: int | None = None
    refusals: bool = True
    leaks: bool = True
    extra_refusal_patterns: list[str] = field(default_factory=list)
    extra_leak_patterns: list[str] = field(default_factory=list)
    dedup: bool = True
    rouge_threshold: float | None = 0.7
    check_images: bool = True
    min_side: int = 32
    max_aspect: float = 5.0
    phash_distance: int | None = 4
    clip: str | None = None
    clip_min: float = 0.2
    clip_batch: int = 64
    clip_device: str | None = None

    def validate(self) -> None:
        for name in ("min_instruction_words", "min_response_words", "min_side", "clip_batch"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be 0 or more")
        for lo, hi in (("min_instruction_words", "max_instruction_words"),
                       ("min_response_words", "max_response_words")):
            if getattr(self, hi) is not None and getattr(self, hi) < getattr(self, lo):
                raise UsageError(f"--{hi.replace('_', '-')} ({getattr(self, hi)}) is below "
                                 f"--{lo.replace('_', '-')} ({getattr(self, lo)})")
        if self.rouge_threshold is not None and not 0 < self.rouge_threshold <= 1:
            raise UsageError(f"--rouge-threshold must be in (0, 1], got {self.rouge_threshold}")
        if self.max_aspect < 1:
            raise UsageError(f"--max-aspect is long side / short side, so at least 1; got {self.max_aspect}")
        if self.phash_distance is not None and not 0 <= self.phash_distance < 64:
            raise UsageError(f"--phash-distance must be in 0..63, got {self.phash_distance}")
        if self.clip is not None and self.clip_batch < 1:
            raise UsageError("--clip-batch must be at least 1")

    def reasons(self) -> list[str]:
        """The drop reasons these settings can produce, in filter order."""
        out = [TOO_SHORT, TOO_LONG]
        out += [REFUSAL] if self.refusals or self.extra_refusal_patterns else []
        out += [LEAK] if self.leaks or self.extra_leak_patterns else []
        if self.check_images:
            out += [IMAGE_MISSING, IMAGE_CORRUPT, IMAGE_ESCAPES_ROOT, IMAGE_TOO_SMALL, IMAGE_ASPECT]
        out += [DUPLICATE] if self.dedup else []
        out += [NEAR_DUP_TEXT] if self.rouge_threshold is not None else []
        out += [NEAR_DUP_IMAGE] if self.phash_distance is not None and self.check_images else []
        if self.clip is not None:
            out += [CLIP_LOW] + ([] if self.check_images else [IMAGE_MISSING, IMAGE_CORRUPT])
        return out


class _Drop(Exception):
    def __init__(self, reason: str, message: str):
        self.reason = reason
        self.message = message


@dataclass
class _ImageFacts:
    error: RowError | None = None
    width: int = 0
    height: int = 0
    content: bytes | None = None      # blake2b of the file bytes
    near: tuple[str, int] | None = None  # (other path, distance) when a near-duplicate; set once
    hashed: bool = False


class RowFilter:
    """The filters over a stream of records; ``check`` drops (raises ``_Drop``) or lets a row through.

    Exposed so stages and tests can filter records without files; ``filter_job`` wraps it with I/O.
    """

    def __init__(self, config: FilterConfig, image_root: Path | None):
        config.validate()
        self.cfg = config
        self.image_root = image_root
        try:
            self.refusal_re = compile_patterns(
                (list(REFUSAL_PATTERNS) if config.refusals else []) + config.extra_refusal_patterns)
            self.leak_re = compile_patterns(
                (list(LEAK_PATTERNS) if config.leaks else []) + config.extra_leak_patterns)
        except re.error as exc:
            raise UsageError(f"a --refusal-pattern / --leak-pattern is not a valid regex: {exc}") from None
        self.images: dict[str, _ImageFacts] = {}
        self.seen: dict[bytes, int] = {}
        self.text_index = None
        self.image_pools: dict[tuple, list[str]] = {}
        self.hash_index = HashIndex(config.phash_distance) if config.phash_distance is not None else None
        self.near_of_content: dict[bytes, tuple[str, int] | None] = {}
        if config.rouge_threshold is not None:
            from .rouge import RougeIndex

            self.text_index = RougeIndex(config.rouge_threshold)
            frac = Fraction(str(config.rouge_threshold)).limit_denominator(10**9)
            self._rouge_frac = (frac.numerator, frac.denominator)

    # -- the filters, in order -------------------------------------------------------------------------

    def check(self, rec: Record, position: int) -> str | None:
        """Raise ``_Drop`` when ``rec`` (the ``position``-th row read) must go.

        A text-only row's near-duplicate test against all kept text rows is left to ``decide_texts``, which
        takes a window of them in one call (same decisions, about half the time): its instruction text is
        returned, and the caller must pass it on before the row counts as kept. Otherwise returns None.
        """
        instr = instructions(rec)
        resp = responses(rec)
        self._lengths(instr, resp)
        self._patterns(resp)
        facts = self._images(rec) if self.cfg.check_images else []
        content = [f.content if f.content is not None else p.encode() for f, p in zip(facts, rec.images)] \
            if facts else [p.encode() for p in rec.images]
        if self.cfg.dedup:
            self._exact(rec, content, position)
        deferred = None
        if self.text_index is not None:
            if content:
                self._near_text(instr, tuple(content))
            else:
                deferred = "\n".join(instr)
        if self.hash_index is not None and self.cfg.check_images:
            self._near_image(rec, facts)
        return deferred

    def decide_texts(self, texts: list[str]) -> list[_Drop | None]:
        """Near-duplicate decisions for text rows in input order, as if tried one at a time; kept ones join
        the index."""
        todo = [i for i, t in enumerate(texts) if t.strip()]
        keep = self.text_index.filter_batch([texts[i] for i in todo])
        out: list[_Drop | None] = [None] * len(texts)
        for i, ok in zip(todo, keep):
            if not ok:
                score, other = self.text_index.most_similar(texts[i])
                out[i] = _Drop(NEAR_DUP_TEXT, f"ROUGE-L {score:.3f} >= {self.cfg.rouge_threshold} with a kept "
                                              f"instruction: {_short(other)!r}")
        return out

    def _lengths(self, instr: list[str], resp: list[str]) -> None:
        cfg = self.cfg
        n_in = sum(len(words(t)) for t in instr)
        n_out = sum(len(words(t)) for t in resp)
        if n_in < cfg.min_instruction_words:
            raise _Drop(TOO_SHORT, f"instructions have {n_in} words, fewer than {cfg.min_instruction_words}")
        if n_out < cfg.min_response_words:
            raise _Drop(TOO_SHORT, f"responses have {n_out} words, fewer than {cfg.min_response_words}")
        if cfg.max_instruction_words is not None and n_in > cfg.max_instruction_words:
            raise _Drop(TOO_LONG, f"instructions have {n_in} words, more than {cfg.max_instruction_words}")
        if cfg.max_response_words is not None and n_out > cfg.max_response_words:
            raise _Drop(TOO_LONG, f"responses have {n_out} words, more than {cfg.max_response_words}")

    def _patterns(self, resp: list[str]) -> None:
        for regex, reason in ((self.refusal_re, REFUSAL), (self.leak_re, LEAK)):
            if regex is None:
                continue
            for text in resp:
                m = regex.search(text)
                if m:
                    raise _Drop(reason, f"a response matches a {reason} pattern: {m.group(0).strip()!r}")

    def _facts(self, path: str) -> _ImageFacts:
        facts = self.images.get(path)
        if facts is None:
            facts = _ImageFacts()
            try:
                info = check_image(resolve(path, self.image_root))
                facts.width, facts.height = info.width, info.height
            except RowError as exc:
                facts.error = exc
            self.images[path] = facts
        return facts

    def _images(self, rec: Record) -> list[_ImageFacts]:
        out = []
        for path in rec.images:
            if is_url(path):
                out.append(_ImageFacts(content=path.encode(), hashed=True))
                continue
            f = self._facts(path)
            if f.error is not None:
                raise _Drop(f.error.reason, f.error.detail)
            short, long_ = sorted((f.width, f.height))
            if short < self.cfg.min_side:
                raise _Drop(IMAGE_TOO_SMALL, f"image {path!r} is {f.width}x{f.height}, "
                                             f"shorter side below {self.cfg.min_side} px")
            if long_ / short > self.cfg.max_aspect:
                raise _Drop(IMAGE_ASPECT, f"image {path!r} is {f.width}x{f.height}, aspect "
                                          f"{long_ / short:.1f} above {self.cfg.max_aspect}")
            if f.content is None and (self.cfg.dedup or self.text_index is not None
                                      or self.hash_index is not None):
                f.content = _file_digest(resolve(path, self.image_root))
            out.append(f)
        return out

    def _exact(self, rec: Record, content: list[bytes], position: int) -> None:
        h = hashlib.blake2b(digest_size=12)
        for c in content:
            h.update(c)
            h.update(b"\x1f")
        h.update(b"\x1e")
        for m in rec.messages:
            h.update(m.role.encode())
            h.update(b"\x1f")
            h.update(normalise(m.content).encode("utf-8", "surrogatepass"))
            h.update(b"\x1e")
        key = h.digest()
        first = self.seen.get(key)
        if first is not None:
            raise _Drop(DUPLICATE, f"same normalised text and image content as input row {first}")
        self.seen[key] = position

    def _near_text(self, instr: list[str], scope: tuple) -> None:
        """Near-duplicate instructions among the kept rows on the same image content (``scope``)."""
        text = "\n".join(instr)
        if not text.strip():
            return
        # Same exact test as RougeIndex, on the index's token-id strings: one C call per row against the
        # other rows on this image, then the threshold settled in integers.
        import numpy as np
        from rapidfuzz import process
        from rapidfuzz.distance import Indel

        code = self.text_index.encode(text)
        if not code:
            return
        pool = self.image_pools.setdefault(scope, [])
        if pool:
            dist = process.cdist([code], pool, scorer=Indel.distance, dtype=np.int64)[0]
            total = np.fromiter(map(len, pool), dtype=np.int64, count=len(pool)) + len(code)
            lcs = (total - dist) // 2
            num, den = self._rouge_frac
            close = np.nonzero((lcs > 0) & (2 * lcs * den >= num * total))[0]
            if len(close):
                j = int(close[0])
                raise _Drop(NEAR_DUP_TEXT, f"ROUGE-L {2 * lcs[j] / total[j]:.3f} >= {self.cfg.rouge_threshold} "
                                           "with a kept instruction on the same image")
        pool.append(code)

    def _near_image(self, rec: Record, facts: list[_ImageFacts]) -> None:
        for path, f in zip(rec.images, facts):
            if not f.hashed:
                f.hashed = True
                f.near = self._hash_new_content(path, f)
            if f.near is not None:
                other, dist = f.near
                raise _Drop(NEAR_DUP_IMAGE, f"image {path!r} is a near-duplicate of {other!r} "
                                            f"(pHash distance {dist} <= {self.cfg.phash_distance})")

    def _hash_new_content(self, path: str, f: _ImageFacts) -> tuple[str, int] | None:
        # The same bytes under another path share one verdict: the first holder of those bytes is not a
        # near-duplicate of itself, and a copy of a near-duplicate is one too.
        if f.content in self.near_of_content:
            return self.near_of_content[f.content]
        try:
            h = phash(resolve(path, self.image_root))
        except (OSError, ValueError, SyntaxError) as exc:
            f.error = RowError(IMAGE_CORRUPT, f"image file {path!r} cannot be decoded: {exc}")
            raise _Drop(IMAGE_CORRUPT, f.error.detail) from None
        hit = self.hash_index.nearest(h)
        self.near_of_content[f.content] = hit
        if hit is None:
            self.hash_index.add(h, path)
        return hit


def _short(text: str | None, n: int = 80) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= n else text[:n - 1] + "…"


def _file_digest(path: Path) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.digest()


class _ClipStage:
    """Holds survivors until a batch is full, then scores them; emits rows in input order."""

    def __init__(self, cfg: FilterConfig, image_root: Path | None):
        from .clip import ClipScorer

        self.scorer = ClipScorer(cfg.clip, device=cfg.clip_device, batch_size=cfg.clip_batch)
        self.threshold = cfg.clip_min
        self.image_root = image_root
        self.pending: list[tuple[int, Record]] = []

    def push(self, position: int, rec: Record) -> list[tuple[int, Record, _Drop | None]]:
        self.pending.append((position, rec))
        return self.flush() if len(self.pending) >= self.scorer.batch_size else []

    def flush(self) -> list[tuple[int, Record, _Drop | None]]:
        rows, self.pending = self.pending, []
        verdicts: list[_Drop | None] = [None] * len(rows)
        pairs_img, pairs_txt, owner = [], [], []
        for i, (_, rec) in enumerate(rows):
            text = " ".join(t for t in (instructions(rec)[:1] + responses(rec)[:1]) if t)
            for path in rec.images:
                if is_url(path):
                    continue
                try:
                    image = self.scorer.load_image(resolve(path, self.image_root))
                except FileNotFoundError:
                    verdicts[i] = _Drop(IMAGE_MISSING, f"image file {path!r} does not exist")
                    break
                except (OSError, ValueError, SyntaxError, RowError) as exc:
                    verdicts[i] = _Drop(IMAGE_CORRUPT, f"image file {path!r} cannot be decoded: {exc}")
                    break
                pairs_img.append(image)
                pairs_txt.append(text)
                owner.append(i)
        scores = self.scorer.score(pairs_img, pairs_txt) if pairs_img else []
        best: dict[int, float] = {}
        for i, s in zip(owner, scores):
            best[i] = max(best.get(i, -2.0), s)
        for i, s in best.items():
            if verdicts[i] is None and s < self.threshold:
                verdicts[i] = _Drop(CLIP_LOW, f"CLIP image-text similarity {s:.3f} below {self.threshold}")
        return [(pos, rec, v) for (pos, rec), v in zip(rows, verdicts)]


def side_paths(out: Path) -> tuple[Path, Path]:
    """Default rejects and funnel files beside ``out``: ``clean.jsonl`` → ``clean.rejects.jsonl``,
    ``clean.funnel.json``."""
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(stem + ".rejects.jsonl"), out.with_name(stem + ".funnel.json")


def filter_job(path: str | Path, out: str | Path, *, config: FilterConfig | None = None, fmt: str | None = None,
               to: str | None = None, image_root: str | Path | None = None, rejects: str | Path | None = None,
               funnel: str | Path | None = None, progress: Any = None) -> dict:
    """Filter ``path`` into ``out``; dropped rows go to ``rejects`` with their reason; the funnel (a dict,
    also returned) is written as JSON to ``funnel``. ``progress`` (a callable taking a str) gets a rate line
    at the end."""
    cfg = config or FilterConfig()
    cfg.validate()
    path, out = Path(path), Path(out)
    default_rejects, default_funnel = side_paths(out)
    rejects_path = Path(rejects) if rejects is not None else default_rejects
    funnel_path = Path(funnel) if funnel is not None else default_funnel
    if len({path.resolve(), out.resolve(), rejects_path.resolve(), funnel_path.resolve()}) < 4:
        raise UsageError("input, output, rejects and funnel must be four different files")
    root = Path(image_root) if image_root is not None else path.resolve().parent
    rows = RowFilter(cfg, root)
    dropped: Counter[str] = Counter({r: 0 for r in cfg.reasons()})
    start = time.perf_counter()
    with RejectsWriter(rejects_path) as rej:
        reader = RecordReader(path, fmt, on_error="skip", rejects=rej)
        clip = _ClipStage(cfg, root) if cfg.clip is not None else None
        with RecordWriter(out, to) as writer:

            def settle(position: int, rec: Record, drop: _Drop | None) -> None:
                if drop is None:
                    writer.write(rec)
                    return
                dropped[drop.reason] += 1
                rej.write(RowError(drop.reason, drop.message, file=str(path), row=position),
                          rec.model_dump(mode="json"))

            window: list[tuple[int, Record, str | None]] = []

            def flush_window() -> None:
                texts = [t for _, _, t in window if t is not None]
                verdicts = iter(rows.decide_texts(texts) if texts else [])
                for position, rec, text in window:
                    drop = next(verdicts) if text is not None else None
                    if drop is not None or clip is None:
                        settle(position, rec, drop)
                    else:
                        for item in clip.push(position, rec):
                            settle(*item)
                window.clear()

            for rec in reader:
                position = reader.stats.read
                try:
                    text = rows.check(rec, position)
                except _Drop as drop:
                    settle(position, rec, drop)
                    continue
                window.append((position, rec, text))
                if len(window) >= _WINDOW:
                    flush_window()
            flush_window()
            if clip is not None:
                for item in clip.flush():
                    settle(*item)
            kept = writer.count
    seconds = time.perf_counter() - start
    result = {
        "input": str(path), "format": reader.format, "output": str(out), "rejects": str(rejects_path),
        "funnel": str(funnel_path), "read": reader.stats.read,
        "unreadable": dict(sorted(reader.stats.rejected.items())),
        "dropped": dict(dropped), "kept": kept, "filters": asdict(cfg),
    }
    with atomic_write(funnel_path, "wb") as fh:
        fh.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    if progress is not None:
        rate = reader.stats.read / seconds if seconds > 0 else 0.0
        progress(f"{reader.stats.read} rows in {seconds:.1f} s ({rate:,.0f} rows/s)")
    return result


def format_funnel(f: dict) -> str:
    """read → unreadable and dropped by reason → kept, one line each."""
    lines = [f"{'read':<26}{f['read']:>10}"]
    for reason, n in f["unreadable"].items():
        lines.append(f"  {'unreadable: ' + reason:<24}{-n:>10}")
    for reason, n in f["dropped"].items():
        lines.append(f"  {reason:<24}{-n:>10}")
    lines.append(f"{'kept':<26}{f['kept']:>10}")
    lines.append(f"output {f['output']}, rejects {f['rejects']}, funnel {f['funnel']}")
    return "\n".join(lines)
