"""Step kinds: for each, its options (the CLI's names), how inputs map to the job, and the call itself.

Each kind calls the ONE job function its CLI command calls, so a recipe step and the command do the same
thing. Stage modules are imported only when a recipe uses them (they may pull in torch).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .endpoint import llm_options, pop_llm_config
from .options import Option, as_list, canonical, comma_list, from_signature, negate, unknown_message


@dataclass
class Call:
    """What a kind's runner gets: resolved paths and keyword arguments (recipe options already mapped)."""

    step: str
    inputs: list[Path] | dict[str, Any]
    output: Path
    kwargs: dict[str, Any]
    log: Callable[[str], None]
    state_dir: Path
    input_options: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Kind:
    name: str
    about: str
    code: tuple[str, ...]                      # modules whose source versions the step's results
    spec: Callable[[], dict[str, Option]]
    run: Callable[[Call], dict]
    inputs: str = "many"                       # one | many | none | roles
    roles: tuple[str, ...] = ()                # input names when inputs is given as a mapping
    output_dir: bool = False
    libs: tuple[str, ...] = ()                 # libraries whose versions change the result
    input_options: tuple[str, ...] = ()        # keys an input given as {path: ...} may carry
    required: tuple[str, ...] = ()             # options without a default (checked before any step runs)
    _cache: dict[str, Option] | None = field(default=None, repr=False)

    def options(self) -> dict[str, Option]:
        if self._cache is None:
            try:
                self._cache = self.spec()
            except ImportError as exc:
                raise UsageError(f"step kind {self.name!r} is not available in this build ({exc})") from None
        return self._cache


def _import(module: str, attr: str) -> Any:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module or module.startswith(exc.name + ".")):
            raise ImportError(f"{module} is missing") from None
        raise
    fn = getattr(mod, attr, None)
    if fn is None:
        raise ImportError(f"{module}.{attr} is missing")
    return fn


# --- train ----------------------------------------------------------------------------------------------

_TRAIN_RENAME = {"warmup": "warmup_ratio", "no-shuffle": "shuffle"}


def _train_spec() -> dict[str, Option]:
    from ..train.config import TrainConfig

    spec: dict[str, Option] = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name == "output":
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        name = canonical(f.name)
        convert = comma_list if f.name in ("lora_targets", "freeze") else None
        spec[name] = Option(name, f.name, convert=convert, default=default,
                            path="in" if f.name in ("model", "image_root", "resume") else
                            "maybe" if f.name == "chat_template" else False)
    for cli, kwarg in _TRAIN_RENAME.items():
        old = spec.pop(canonical(kwarg))
        spec[cli] = Option(cli, kwarg, convert=negate if cli.startswith("no-") else None, default=old.default
                           if not cli.startswith("no-") else False, path=old.path)
    spec["from"] = Option("from", "fmt")
    return spec


def _train_run(call: Call) -> dict:
    from ..train.config import TrainConfig
    from ..train.job import train_job

    kw = dict(call.kwargs)
    fmt = kw.pop("fmt", None)
    cfg = TrainConfig(output=str(call.output), **kw).check()
    return train_job([str(p) for p in call.inputs], cfg, fmt=fmt, log=call.log)


# --- tiny-model -----------------------------------------------------------------------------------------

def _tiny_spec() -> dict[str, Option]:
    from ..testing import tiny

    spec = from_signature(tiny.build_tiny_llava)
    spec["text"] = Option("text", "text", default=False)
    return spec


def _tiny_run(call: Call) -> dict:
    from ..testing import tiny

    kw = dict(call.kwargs)
    text = kw.pop("text", False)
    if text:
        for k in ("image_size", "patch_size"):
            if kw.pop(k, None) is not None:
                raise UsageError(f"step {call.step!r}: option {canonical(k)!r} only applies to the LLaVA model")
    save = tiny.save_tiny_text_lm if text else tiny.save_tiny_llava
    save(call.output, **kw)
    kind = "text LM" if text else "LLaVA"
    call.log(f"built a tiny random {kind} in {call.output}")
    return {"model": "tiny-text-lm" if text else "tiny-llava", "seed": kw.get("seed", 0)}


# --- convert --------------------------------------------------------------------------------------------

def _convert_spec() -> dict[str, Option]:
    fn = _import("instructkit.formats.convert", "convert_file")
    return from_signature(fn, skip=("src", "dst"), rename={"from": "from_fmt", "to": "to_fmt"},
                          paths=("image-root",), out_paths=("rejects",))


def _convert_run(call: Call) -> dict:
    fn = _import("instructkit.formats.convert", "convert_file")
    return fn(call.inputs[0], call.output, log=call.log, **call.kwargs)


# --- adapt ----------------------------------------------------------------------------------------------

def _adapt_spec() -> dict[str, Option]:
    fn = _import("instructkit.adapt.job", "run_adapt")
    spec = from_signature(fn, skip=("input", "output", "annotations", "llm_config", "quiet"),
                          paths=("image-root", "rewrite-examples"), maybe_paths=("templates",),
                          out_paths=("rejects",),
                          transport=("progress",))
    return spec | llm_options()


def _adapt_run(call: Call) -> dict:
    fn = _import("instructkit.adapt.job", "run_adapt")
    kw = dict(call.kwargs)
    kw.setdefault("progress", False)
    cfg = pop_llm_config(kw, state_dir=call.state_dir, progress=kw["progress"])
    inputs = call.inputs if isinstance(call.inputs, dict) else {"input": call.inputs}
    if "input" not in inputs:
        raise UsageError(f"step {call.step!r}: the adapt input (questions or source file) is missing")
    return fn(inputs["input"], call.output, annotations=inputs.get("annotations"),
              llm_config=cfg if kw.get("rewrite") else None, log=call.log, **kw)


# --- mix ------------------------------------------------------------------------------------------------

_MIX_RENAME = {"to_fmt": "to", "shuffle_memory_mb": "shuffle-memory"}
_MIX_JOB = ("seed", "manifest", "rejects", "tmp_dir", "image_root")


def _dataclass_options(cls: Any, *, skip: tuple[str, ...] = (), rename: dict[str, str] | None = None,
                       lists: tuple[str, ...] = (), paths: tuple[str, ...] = ()) -> dict[str, Option]:
    rename = rename or {}
    spec: dict[str, Option] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        name = canonical(rename.get(f.name, f.name))
        spec[name] = Option(name, f.name, convert=comma_list if f.name in lists else None, default=default,
                            path="in" if f.name in paths else False)
    return spec


def _mix_spec() -> dict[str, Option]:
    from ..mix.spec import MixOptions

    _import("instructkit.mix.job", "run_mix")
    spec = _dataclass_options(MixOptions, skip=("inputs",), rename=_MIX_RENAME)
    spec["seed"] = Option("seed", "seed", default=0)
    for name in ("manifest", "rejects"):
        spec[name] = Option(name, name, path="out")
    spec["tmp-dir"] = Option("tmp-dir", "tmp_dir", path="out", result=False)
    spec["image-root"] = Option("image-root", "image_root", path="in", result=False)
    return spec


def _mix_run(call: Call) -> dict:
    from ..mix.spec import MixOptions, make_spec

    run_mix = _import("instructkit.mix.job", "run_mix")
    kw = dict(call.kwargs)
    job = {k: kw.pop(k) for k in _MIX_JOB if k in kw}
    specs = [make_spec(path, dict(opts), f"step {call.step!r}: input {path.name}")
             for path, opts in zip(call.inputs, call.input_options or [{}] * len(call.inputs))]
    return run_mix(MixOptions(inputs=specs, **kw), call.output, log=call.log, **job)


# --- self-instruct --------------------------------------------------------------------------------------

# Input roles (the command's file options) -> keyword arguments of run_self_instruct.
_SI_ROLES = {"captions": "captions", "instances": "instances", "input": "input_jsonl", "seed-tasks": "seed_tasks"}


def _si_spec() -> dict[str, Option]:
    fn = _import("instructkit.self_instruct.job", "run_self_instruct")
    spec = from_signature(fn, skip=("output", "llm", "engine", *_SI_ROLES.values()),
                          rename={"to": "out_format", "evolve": "evolve_rounds", "context": "with_context",
                                  "demos": "demos_dir", "template-dir": "template_dirs",
                                  "parse-retries": "max_parse_retries", "rouge-threshold": "threshold"},
                          paths=("image-root", "demos", "template-dir"), out_paths=("rejects",))
    spec["template-dir"] = dataclasses.replace(spec["template-dir"], convert=as_list)
    spec["progress"] = Option("progress", "progress", default=False, result=False)
    return spec | llm_options()


def _si_run(call: Call) -> dict:
    fn = _import("instructkit.self_instruct.job", "run_self_instruct")
    kw = dict(call.kwargs)
    cfg = pop_llm_config(kw, state_dir=call.state_dir, progress=bool(kw.pop("progress", False)))
    inputs = {_SI_ROLES[canonical(k)]: v for k, v in (call.inputs if isinstance(call.inputs, dict) else {}).items()}
    return fn(output=call.output, llm=cfg, **inputs, **kw)


# --- filter ---------------------------------------------------------------------------------------------

_FILTER_JOB = ("fmt", "to", "image_root", "rejects", "funnel")


def _off_below(limit: float) -> Callable[[Any], Any]:
    """The CLI's "0 (or -1) turns it off" convention: below ``limit`` becomes None."""
    return lambda v: None if v is None or v < limit else v


def _filter_spec() -> dict[str, Option]:
    from ..quality.filters import FilterConfig

    _import("instructkit.quality.filters", "filter_job")
    base = _dataclass_options(FilterConfig)
    spec = {k: base[k] for k in ("min-instruction-words", "max-instruction-words", "min-response-words",
                                 "max-response-words", "min-side", "max-aspect", "clip-min", "clip-batch",
                                 "clip-device")}
    for cli, kwarg in (("no-refusals", "refusals"), ("no-leaks", "leaks"), ("no-dedup", "dedup"),
                       ("no-image-checks", "check_images")):
        spec[cli] = Option(cli, kwarg, convert=negate, default=False)
    spec["refusal-pattern"] = Option("refusal-pattern", "extra_refusal_patterns", convert=as_list)
    spec["leak-pattern"] = Option("leak-pattern", "extra_leak_patterns", convert=as_list)
    spec["rouge-threshold"] = Option("rouge-threshold", "rouge_threshold", convert=_off_below(1e-12),
                                     default=0.7)
    spec["phash-distance"] = Option("phash-distance", "phash_distance", convert=_off_below(0), default=4)
    spec["clip"] = Option("clip", "clip", path="in")
    spec["from"] = Option("from", "fmt")
    spec["to"] = Option("to", "to")
    spec["image-root"] = Option("image-root", "image_root", path="in")
    for name in ("rejects", "funnel"):
        spec[name] = Option(name, name, path="out")
    return spec


def _filter_run(call: Call) -> dict:
    from ..quality.filters import FilterConfig

    filter_job = _import("instructkit.quality.filters", "filter_job")
    kw = dict(call.kwargs)
    job = {k: kw.pop(k) for k in _FILTER_JOB if k in kw}
    return filter_job(call.inputs[0], call.output, config=FilterConfig(**kw), progress=call.log, **job)


KINDS: dict[str, Kind] = {
    "self-instruct": Kind("self-instruct", "generate conversations / descriptions / reasoning from captions "
                          "and boxes, or text instructions (instructkit self-instruct)",
                          ("instructkit.self_instruct", "instructkit.templates", "instructkit.llm"),
                          _si_spec, _si_run, inputs="roles", roles=tuple(_SI_ROLES)),
    "mix": Kind("mix", "combine data sets: shuffled, sequential, interleaved, batched (instructkit mix)",
                ("instructkit.mix",), _mix_spec, _mix_run, inputs="many",
                input_options=("w", "weight", "cap", "mult", "name", "fmt", "from")),
    "filter": Kind("filter", "quality filters, dedup, image checks (instructkit filter)",
                   ("instructkit.quality",), _filter_spec, _filter_run, inputs="one"),
    "adapt": Kind("adapt", "VQA / caption data to instructions (instructkit adapt)", ("instructkit.adapt",
                  "instructkit.templates"), _adapt_spec, _adapt_run, inputs="roles",
                  roles=("input", "annotations")),
    "train": Kind("train", "fine-tune a model on the inputs (instructkit train)", ("instructkit.train",),
                  _train_spec, _train_run, inputs="many", output_dir=True, required=("model",),
                  libs=("torch", "transformers", "accelerate", "peft")),
    "tiny-model": Kind("tiny-model", "build a tiny random LLaVA (or text LM) offline, for trying a recipe",
                       ("instructkit.testing.tiny",), _tiny_spec, _tiny_run, inputs="none", output_dir=True,
                       libs=("torch", "transformers", "tokenizers")),
    "convert": Kind("convert", "convert a record file between formats (instructkit convert)",
                    ("instructkit.formats",), _convert_spec, _convert_run, inputs="one"),
}


def get(name: str) -> Kind:
    kind = KINDS.get(canonical(name))
    if kind is None:
        raise UsageError(unknown_message("step kind", name, KINDS))
    return kind
