"""What to mix: inputs (``path[:w=0.3,cap=100000,mult=2,name=text,fmt=llava]``), a YAML recipe, the options."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError

STRATEGIES = ("concat", "shuffle", "sequential", "interleave")
STOPPING = ("first-exhausted", "all-exhausted", "without-replacement")
BATCHES = ("modality", "ratio")
WEIGH_BY = ("examples", "tokens")
_KEYS = {"w": "weight", "weight": "weight", "cap": "cap", "mult": "mult", "name": "name", "fmt": "fmt",
         "from": "fmt"}
# The option part after the last ':' — only taken as options when it looks like key=value pairs, so
# paths with colons still work.
_OPTS = re.compile(r"^(?:[A-Za-z_]+=[^,=]*)(?:,[A-Za-z_]+=[^,=]*)*$")


@dataclass(frozen=True)
class InputSpec:
    path: Path
    name: str
    weight: float | None = None
    cap: int | None = None
    mult: int = 1
    fmt: str | None = None


def _number(key: str, value: Any, where: str, kind: type) -> Any:
    try:
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            num = int(str(value).replace("_", "")) if not isinstance(value, (int, float)) else int(value)
        else:
            if isinstance(value, bool):
                raise ValueError
            num = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: {key}={value!r} is not {'a whole number' if kind is int else 'a number'}") \
            from None
    if kind is float and not math.isfinite(num):
        raise UsageError(f"{where}: {key}={value!r} is not a finite number")
    return num


def make_spec(path: str | Path, options: dict[str, Any], where: str) -> InputSpec:
    """Check one input's options; ``where`` names it in errors (the command-line text or recipe entry)."""
    opts: dict[str, Any] = {}
    for key, value in options.items():
        if key not in _KEYS:
            raise UsageError(f"{where}: unknown input option {key!r}; use w (weight), cap, mult, name or fmt")
        opts[_KEYS[key]] = value
    weight = opts.get("weight")
    if weight is not None:
        weight = _number("w", weight, where, float)
        if weight < 0:
            raise UsageError(f"{where}: weight {weight} is negative")
    cap = opts.get("cap")
    if cap is not None:
        cap = _number("cap", cap, where, int)
        if cap < 0:
            raise UsageError(f"{where}: cap {cap} is negative")
    mult = _number("mult", opts.get("mult", 1), where, int)
    if mult < 1:
        raise UsageError(f"{where}: mult must be 1 or more, not {mult}")
    path = Path(path)
    name = str(opts.get("name") or path.stem or path.name)
    fmt = opts.get("fmt") or None
    return InputSpec(path, name, weight, cap, mult, fmt)


def parse_input(text: str) -> InputSpec:
    """``path[:key=value,...]`` from the command line."""
    path, options = text, {}
    head, sep, tail = text.rpartition(":")
    if sep and head and _OPTS.match(tail):
        path = head
        for item in tail.split(","):
            key, _, value = item.partition("=")
            if key in options:
                raise UsageError(f"{text}: option {key!r} given twice")
            options[key] = value
    return make_spec(path, options, text)


def load_recipe(path: str | Path) -> dict[str, Any]:
    """A YAML recipe: ``inputs`` (list of {path, w|weight, cap, mult, name, fmt}) plus any option of
    ``MixOptions`` by name (``batch_size``, ``image_fraction``...); relative paths are taken from the
    recipe's folder."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: recipe not found") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a recipe is a mapping with 'inputs' and options")
    base = path.parent
    inputs = []
    for i, item in enumerate(data.pop("inputs", None) or []):
        where = f"{path}: inputs[{i}]"
        if isinstance(item, str):
            try:
                spec = parse_input(item)
            except UsageError as exc:
                raise UsageError(f"{where}: {exc}") from None
            item_path, spec_opts = spec.path, spec
        elif isinstance(item, dict) and "path" in item:
            opts = dict(item)
            item_path = opts.pop("path")
            spec_opts = make_spec(item_path, opts, where)
        else:
            raise UsageError(f"{where}: expected a path or a mapping with 'path'")
        p = Path(item_path)
        inputs.append(replace(spec_opts, path=p if p.is_absolute() else base / p))
    known = {f.name for f in fields(MixOptions)}
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - known - {"output", "seed"})
    if unknown:
        raise UsageError(f"{path}: unknown recipe keys {unknown}; known: inputs, output, seed, "
                         + ", ".join(sorted(known - {'inputs'})))
    for key in list(data):
        if key in _OPTION_TYPES and data[key] is not None:
            data[key] = _typed_option(key, data[key], str(path))
    if "output" in data and data["output"] is not None:
        if not isinstance(data["output"], str):
            raise UsageError(f"{path}: output must be a path, not {data['output']!r}")
        out = Path(data["output"])
        data["output"] = out if out.is_absolute() else base / out
    data["inputs"] = inputs
    return data


_OPTION_TYPES: dict[str, type] = {
    "strategy": str, "stopping": str, "weigh_by": str, "batches": str, "stages": str, "to_fmt": str,
    "on_error": str, "temperature": float, "temperature_cap": float, "image_fraction": float,
    "batch_size": int, "size": int, "shuffle_memory_mb": int, "allow_repeat": bool, "dedup": bool,
}


def _typed_option(key: str, value: Any, where: str) -> Any:
    """A recipe value of the type the option takes: YAML gives strings, numbers and booleans as written,
    and a quoted 'no' must not switch an option on by being truthy."""
    kind = _OPTION_TYPES[key]
    if kind is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{where}: {key} must be true or false, not {value!r}")
        return value
    if kind is str:
        if key == "stages" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ",".join(value)
        if not isinstance(value, str):
            raise UsageError(f"{where}: {key} must be a string, not {value!r}")
        return value
    return _number(key, value, where, kind)


@dataclass
class MixOptions:
    """Every knob of a mix; ``check`` rejects combinations that make no sense before any file is read."""

    inputs: list[InputSpec] = field(default_factory=list)
    strategy: str = "shuffle"
    stopping: str | None = None
    temperature: float | None = None
    temperature_cap: float | None = None
    weigh_by: str = "examples"
    batches: str | None = None
    batch_size: int | None = None
    image_fraction: float | None = None
    allow_repeat: bool = False
    size: int | None = None
    stages: str = "text,image"
    dedup: bool = False
    shuffle_memory_mb: int | None = None
    to_fmt: str | None = None
    on_error: str = "fail"

    def check(self) -> None:
        if not self.inputs:
            raise UsageError("no inputs: give input files or a --recipe with 'inputs'")
        names = [s.name for s in self.inputs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise UsageError(f"two inputs share the name {dup[0]!r}; give one of them name=...")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if self.on_error not in ("fail", "skip"):
            raise UsageError(f"--on-error must be fail or skip, not {self.on_error!r}")
        if self.stopping is not None:
            if self.stopping not in STOPPING:
                raise UsageError(f"unknown stopping {self.stopping!r}; choose one of {', '.join(STOPPING)}")
            if self.strategy != "interleave":
                raise UsageError("--stopping applies to --strategy interleave only")
            if self.size is not None:
                raise UsageError("--size fixes where interleave stops (sources restart when they run out); "
                                 "drop --stopping or --size")
        if self.weigh_by not in WEIGH_BY:
            raise UsageError(f"--weigh-by must be examples or tokens, not {self.weigh_by!r}")
        if self.temperature is not None and self.temperature <= 0:
            raise UsageError(f"--temperature must be positive, not {self.temperature}")
        if self.temperature_cap is not None and self.temperature_cap <= 0:
            raise UsageError(f"--temperature-cap must be positive, not {self.temperature_cap}")
        if self.temperature is None and (self.temperature_cap is not None or self.weigh_by != "examples"):
            raise UsageError("--temperature-cap and --weigh-by apply to --temperature only")
        if self.allow_repeat and self.batches != "ratio":
            raise UsageError("--allow-repeat applies to --batches ratio only (--size and mult= repeat rows "
                             "for the other strategies)")
        weighted = [s for s in self.inputs if s.weight is not None]
        if weighted and self.temperature is not None:
            raise UsageError("give either weights (w=...) or --temperature, not both")
        if weighted and len(weighted) != len(self.inputs):
            raise UsageError("give a weight to every input or to none (missing: "
                             + ", ".join(s.name for s in self.inputs if s.weight is None) + ")")
        if weighted and sum(s.weight for s in weighted) <= 0:
            raise UsageError("the weights sum to zero")
        uses_weights = bool(weighted) or self.temperature is not None
        if self.size is not None and self.size < 0:
            raise UsageError(f"--size must be 0 or more, not {self.size}")
        if self.batches is not None:
            self._check_batches(uses_weights)
        elif uses_weights and self.strategy != "interleave" and self.size is None:
            raise UsageError("weights and --temperature set the proportions of --strategy interleave, or of "
                             "the other strategies together with --size; give one of those")
        if self.shuffle_memory_mb is not None:
            if self.strategy != "shuffle" or self.batches is not None:
                raise UsageError("--shuffle-memory applies to --strategy shuffle only")
            if self.shuffle_memory_mb < 1:
                raise UsageError("--shuffle-memory must be at least 1 (MB)")
        if self.strategy == "sequential":
            self.stage_list()

    def _check_batches(self, uses_weights: bool) -> None:
        if self.batches not in BATCHES:
            raise UsageError(f"unknown --batches {self.batches!r}; choose modality or ratio")
        if uses_weights:
            raise UsageError("--batches builds blocks from every selected row; set per-input amounts with "
                             "cap=/mult= instead of weights or --temperature")
        if self.strategy not in ("shuffle", "concat") or self.stopping is not None:
            raise UsageError("--batches replaces --strategy; leave --strategy and --stopping out")
        if self.batch_size is None or self.batch_size < 1:
            raise UsageError("--batches needs --batch-size B (1 or more)")
        if self.batches == "ratio":
            f = self.image_fraction
            if f is None or not 0 <= f <= 1:
                raise UsageError("--batches ratio needs --image-fraction between 0 and 1")
            if self.size is not None and self.size % self.batch_size:
                raise UsageError(f"--size {self.size} is not a multiple of --batch-size {self.batch_size}")
        elif self.image_fraction is not None:
            raise UsageError("--image-fraction applies to --batches ratio only")
        if self.batches == "modality" and self.size is not None:
            raise UsageError("--size is not supported with --batches modality (set cap=/mult= per input)")

    def stage_list(self) -> list[str]:
        """Sequential stages: 'text,image' / 'image,text' (by modality) or 'inputs' (one per input, given
        order) or input names separated by commas."""
        if self.stages == "inputs":
            return [s.name for s in self.inputs]
        parts = [p.strip() for p in self.stages.split(",") if p.strip()]
        if sorted(parts) == ["image", "text"]:
            return parts
        names = [s.name for s in self.inputs]
        if sorted(parts) != sorted(names):
            raise UsageError(f"--stages {self.stages!r}: give 'text,image', 'image,text', 'inputs', or every "
                             f"input name once ({', '.join(names)})")
        return parts

    def parameters(self) -> dict[str, Any]:
        """The knobs as recorded in the manifest (inputs are listed separately)."""
        out = {"strategy": self.strategy if self.batches is None else f"batches-{self.batches}"}
        if self.batches is None and self.strategy == "interleave":
            out["stopping"] = self.effective_stopping()
        if self.strategy == "sequential" and self.batches is None:
            out["stages"] = self.stage_list()
        for key in ("temperature", "temperature_cap", "batch_size", "image_fraction", "size",
                    "shuffle_memory_mb"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.temperature is not None:
            out["weigh_by"] = self.weigh_by
        out["allow_repeat"] = self.allow_repeat
        out["dedup"] = self.dedup
        out["on_error"] = self.on_error
        return out

    def effective_stopping(self) -> str:
        if self.size is not None:
            return "size"
        return self.stopping or "without-replacement"
