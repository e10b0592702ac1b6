"""``run_adapt``: open the source, wire the core, the image check, the optional rewrite and the writer, print
the funnel and return it. The CLI calls only this."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from ..errors import RowError, TemplateError, UsageError
from ..formats import RecordWriter, RejectsWriter
from ..formats.atomic import atomic_write
from ..formats.registry import format_for_output
from ..images import check_image, resolve
from ..records import make_record
from ..templates import Family, TemplateEngine, parse_family
from .core import Adapter, AdaptOptions
from .sources import Bad, Item, Source, open_source

# Default family for each reader (and the task name it implies).
DEFAULT_FAMILY = {"vqav2": "vqa", "gqa": "vqa", "aokvqa": "vqa-mc", "textvqa": "ocr",
                  "coco-captions": "caption", "generic": "vqa"}
TASKS = {"vqa": "vqa", "vqa-short": "vqa", "vqa-mc": "vqa-mc", "caption": "caption", "ocr": "ocr"}
_IMAGE_MEMO_MAX = 1 << 20


def load_family(spec: str) -> Family:
    """``vqa`` / ``adapt/vqa`` (shipped or from a user folder), a ``.jinja`` file, or a folder whose
    ``*.jinja`` files (each possibly a family) together form one family."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(path.glob("*.jinja"))
        if not files:
            raise TemplateError(f"template folder {path} holds no .jinja files")
        entries = []
        for f in files:
            fam = parse_family(f"{path.name}/{f.stem}", f, f.read_text(encoding="utf-8"), "user")
            entries.extend(fam.entries)
        return Family(path.name, path, entries, {}, "user")
    if path.suffix == ".jinja":
        if not path.is_file():
            raise TemplateError(f"template file {path} does not exist")
        return parse_family(path.stem, path, path.read_text(encoding="utf-8"), "user")
    name = spec if "/" in spec else f"adapt/{spec}"
    return TemplateEngine().family(name)


def _task_for(family: Family, spec: str) -> str:
    short = spec.split("/")[-1]
    if short in TASKS:
        return TASKS[short]
    if "options" in family.variables:
        return "vqa-mc"
    return "vqa" if "question" in family.variables else "caption"


class _ImageCheck:
    """Header-only check of each distinct image once (VQA has ~5 questions per image)."""

    def __init__(self, root: Path | None):
        self.root = root
        self.memo: dict[str, RowError | None] = {}

    def __call__(self, items: Iterable[Item | Bad]) -> Iterator[Item | Bad]:
        memo = self.memo
        for item in items:
            if item.__class__ is Item:
                err = memo.get(item.image, 0)
                if err == 0:
                    err = None
                    try:
                        check_image(resolve(item.image, self.root))
                    except RowError as exc:
                        err = exc
                    if len(memo) >= _IMAGE_MEMO_MAX:
                        memo.clear()
                    memo[item.image] = err
                if err is not None:
                    item = Bad(RowError(err.reason, err.detail, file=item.file, line=item.line, row=item.row),
                               {"image": item.image, "question": item.question, "id": item.sid})
            yield item


def _shard(spec: str | None) -> tuple[int, int] | None:
    if not spec:
        return None
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        k, n = -1, 0
    if not 0 <= k < n:
        raise UsageError(f"--shard must be K/N with 0 <= K < N, got {spec!r}")
    return k, n


class _FastCanonical:
    """Canonical JSONL straight from the core's dicts: the same bytes ``RecordWriter`` writes (a test
    checks it), without a pydantic model per row."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0

    def __enter__(self) -> _FastCanonical:
        self._cm = atomic_write(self.path, "wb")
        self._fh = self._cm.__enter__()
        return self

    def write_dict(self, rec: dict) -> None:
        self._fh.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1

    def write_lines(self, chunk: bytes, n: int) -> None:
        """``n`` finished lines from ``Adapter.run_lines``."""
        self._fh.write(chunk)
        self.count += n

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


class _RecordOut:
    def __init__(self, path: Path, fmt: str | None, lean: bool, image_root: Path | None):
        self.writer = RecordWriter(path, fmt, lean=lean, image_root=image_root)

    def __enter__(self) -> _RecordOut:
        self.writer.__enter__()
        return self

    def write_dict(self, rec: dict) -> None:
        self.writer.write(make_record(rec, row=self.writer.count))

    @property
    def count(self) -> int:
        return self.writer.count

    def __exit__(self, *exc: Any) -> None:
        self.writer.__exit__(*exc)


def run_adapt(input: str | Path, output: str | Path, *, annotations: str | Path | None = None,
              source: str = "auto", to: str | None = None, lean: bool = False, templates: str | None = None,
              strategy: str = "random", seed: int = 0, answers: str = "majority", task: str | None = None,
              source_name: str | None = None, image_root: str | Path | None = None,
              image_pattern: str | None = None, check_images: bool = True, on_error: str = "fail",
              rejects: str | Path | None = None, limit: int | None = None, shard: str | None = None,
              merge_by_image: bool = False, max_turns: int | None = None, shuffle_turns: bool = False,
              mc_shuffle: bool = True, mc_repeat: bool = False, image_col: str = "image",
              question_col: str = "question", answer_col: str | None = None, choices_col: str | None = None,
              ocr_col: str | None = None, id_col: str | None = None, rewrite: bool = False,
              llm_config: Any = None, rewrite_examples: str | Path | None = None, rewrite_temperature: float = 0.7,
              num_proc: int = 1, progress: bool = True, log: Callable[[str], None] | None = None,
              quiet: bool = False, _slice: tuple[int, int, int, int] | None = None) -> dict:
    """Adapt one source to instruction records; returns the funnel as a dict."""
    if quiet:
        log = _silent
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    if num_proc < 1:
        raise UsageError(f"--num-proc must be at least 1, got {num_proc}")
    if num_proc > 1 and _slice is None:
        given = dict(locals())
        from .parallel import run_parallel

        kwargs = {k: v for k, v in given.items() if k not in ("num_proc", "log", "quiet", "_slice")}
        if on_error == "skip" and rejects is None:
            kwargs["rejects"] = Path(output).with_name(Path(output).name + ".rejects.jsonl")
        log(f"{input}: reading as generic JSONL in {num_proc} worker processes (slices cut at line boundaries)")
        funnel = run_parallel(num_proc, kwargs, log)
        _print_funnel(funnel, log)
        return funnel
    if on_error not in ("fail", "skip"):
        raise UsageError(f"--on-error must be fail or skip, not {on_error!r}")
    if limit is not None and limit < 0:
        raise UsageError(f"--limit must be 0 or more, got {limit}")
    if rewrite and llm_config is None:
        raise UsageError("--rewrite needs an LLM endpoint configuration (--model, --base-url)")
    if rewrite and merge_by_image:
        raise UsageError("--rewrite rewrites one question at a time; it cannot be combined with --merge-by-image")
    output = Path(output)
    root = Path(image_root) if image_root else None
    src: Source = open_source(input, source, annotations=annotations, image_pattern=image_pattern,
                              image_root=root, image_col=image_col, question_col=question_col,
                              answer_col=answer_col, choices_col=choices_col, ocr_col=ocr_col, id_col=id_col)
    log(src.describe)
    if rewrite and "question" not in src.variables:
        raise UsageError(f"--rewrite rewrites questions and answers; the {src.name} reader has no questions")
    spec = templates or DEFAULT_FAMILY[src.name]
    if templates is None and src.name == "generic":
        spec = "vqa-mc" if choices_col else "ocr" if ocr_col else spec
    family = load_family(spec)
    options = AdaptOptions(strategy=strategy, seed=seed, answers=answers, source=source_name or src.name,
                           task=task or _task_for(family, spec), merge_by_image=merge_by_image,
                           max_turns=max_turns, shuffle_turns=shuffle_turns, mc_shuffle=mc_shuffle,
                           mc_repeat=mc_repeat, keep_question=rewrite, shard=_shard(shard))
    # Checks every entry against what the source can fill: an unknown variable fails before any row.
    adapter = Adapter(family, options, src.variables)
    log(f"templates: {family.name} ({len(family.entries)} entries, strategy {strategy}, seed {seed}); "
        f"task {options.task}; answers {answers}")
    if on_error == "skip" and rejects is None:
        rejects = output.with_name(output.name + ".rejects.jsonl")

    start = 0
    if _slice is not None:
        src.byte_range = _slice[:3]
        start = _slice[3]
    items: Iterable[Item | Bad] = src
    if limit is not None:
        items = itertools.islice(items, limit)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="adapt", unit=" rows", file=sys.stderr, mininterval=0.5)
    if check_images:
        items = _ImageCheck(root)(items)
    fmt, _container = format_for_output(output, to)
    fast = fmt == "canonical" and _container == "jsonl" and not lean
    # Straight to canonical JSONL lines (no record dicts) when nothing downstream needs the dicts.
    as_lines = fast and not rewrite and adapter.lines_supported()
    records: Iterator[Any] = adapter.run_lines(items, start) if as_lines else adapter.run(items, start)

    rewriter = None
    engine = None
    if rewrite:
        from ..llm import Engine
        from .rewrite import Rewriter

        rewriter = Rewriter(model=llm_config.model, examples=rewrite_examples, seed=seed,
                            temperature=rewrite_temperature)
        engine = Engine(llm_config)
        records = _rewrite_stream(records, rewriter, engine)

    out = _FastCanonical(output) if fast else _RecordOut(output, to, lean, root)
    rej = RejectsWriter(rejects) if rejects is not None else None
    try:
        with out:
            if rej is not None:
                rej.__enter__()
            try:
                for rec in records:
                    if rec.__class__ is Bad:
                        if on_error == "fail":
                            raise rec.error
                        if rej is not None:
                            rej.write(rec.error, rec.data)
                        continue
                    if as_lines:
                        out.write_lines(*rec)
                    else:
                        out.write_dict(rec)
            finally:
                if rej is not None:
                    rej.__exit__(*sys.exc_info())
    finally:
        if engine is not None:
            engine.close()
    stats = adapter.stats
    funnel: dict[str, Any] = {
        "reader": src.name, "input": str(input), "output": str(output), "format": fmt,
        "templates": family.name, "strategy": strategy, "answers": answers, "seed": seed,
        "read": stats.read, "rejected": dict(sorted(stats.rejected.items())),
        "produced": stats.produced, "written": out.count,
        "template_histogram": dict(sorted(stats.templates.items())),
    }
    if rej is not None:
        funnel["rejects_file"] = str(rejects)
    if getattr(src, "pending_peak", None) is not None:
        funnel["join_pending_peak"] = src.pending_peak
    if rewriter is not None:
        funnel["rewrite"] = {"kept": rewriter.stats.kept, "fallback": dict(sorted(rewriter.stats.fallback.items()))}
        if engine is not None:
            funnel["llm"] = engine.summary()
    _print_funnel(funnel, log)
    return funnel


def _rewrite_stream(records: Iterator[dict | Bad], rewriter, engine) -> Iterator[dict | Bad]:
    """Bad rows bypass the LLM; their order relative to good rows may shift, which only affects the
    rejects file (output order stays input order)."""
    bad: list[Bad] = []

    def good() -> Iterator[dict]:
        for rec in records:
            if rec.__class__ is Bad:
                bad.append(rec)
            else:
                yield rec

    for rec in rewriter.run(good(), engine):
        while bad:
            yield bad.pop(0)
        yield rec
    yield from bad


def _silent(message: str) -> None:
    pass


def _print_funnel(f: dict, log: Callable[[str], None]) -> None:
    rejected = sum(f["rejected"].values())
    log(f"funnel: read {f['read']} -> produced {f['produced']} -> written {f['written']} ({f['output']}, "
        f"{f['format']})")
    if rejected:
        where = f" -> {f['rejects_file']}" if "rejects_file" in f else ""
        log(f"rejected {rejected}: " + ", ".join(f"{k} {v}" for k, v in f["rejected"].items()) + where)
    else:
        log("rejected 0")
    if "rewrite" in f:
        fb = f["rewrite"]["fallback"]
        log(f"rewrite: kept {f['rewrite']['kept']}, fell back {sum(fb.values())}"
            + (": " + ", ".join(f"{k} {v}" for k, v in fb.items()) if fb else ""))
        if "llm" in f:
            log(f["llm"])
