"""Reading a recipe: YAML, ``${...}`` substitution, ``--set`` overrides, structure checks, step order.

A recipe is a mapping with ``steps:`` (a list) and optional ``name``, ``description``, ``workdir`` and
``vars``. Strings may use ``${var}`` (a recipe variable), ``${env:NAME}`` or ``${env:NAME:-default}`` (the
environment), and the built-ins ``${seeds}``, ``${templates}``, ``${recipe_dir}`` and ``${workdir}``.
``$$`` is a literal ``$``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import UsageError
from .options import canonical, unknown_message

TOP_KEYS = ("name", "description", "workdir", "vars", "steps")
STEP_KEYS = ("name", "kind", "inputs", "output", "options", "description")
BUILTINS = ("seeds", "templates", "recipe_dir", "workdir")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REF = re.compile(r"\$\$|\$\{([^}]*)\}")


@dataclass
class Step:
    name: str
    kind: str
    inputs: list[str] | dict[str, Any]
    output: str
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass
class Recipe:
    path: Path
    name: str
    description: str
    workdir: str | None
    vars: dict[str, Any]
    steps: list[Step]
    text: bytes                      # the file as read, for the manifest's recipe hash

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise UsageError(f"{self.path}: {unknown_message('step', name, [s.name for s in self.steps])}")


class _Subst:
    def __init__(self, where: str, values: dict[str, Any]):
        self.where = where
        self.values = values

    def __call__(self, value: Any, ctx: str) -> Any:
        if isinstance(value, str):
            whole = re.fullmatch(r"\$\{([^}]*)\}", value)
            if whole and whole.group(1).strip() in self.values:
                return self.values[whole.group(1).strip()]     # keeps a variable's YAML type (int, list)
            if whole and whole.group(1).strip().startswith("env:"):
                return _scalar(self._one(whole, ctx))          # seed: ${env:SEED:-0} is a number
            return _REF.sub(lambda m: self._one(m, ctx), value)
        if isinstance(value, list):
            return [self(v, ctx) for v in value]
        if isinstance(value, dict):
            return {k: self(v, ctx) for k, v in value.items()}
        return value

    def _one(self, m: re.Match, ctx: str) -> str:
        if m.group(0) == "$$":
            return "$"
        ref = m.group(1).strip()
        if ref.startswith("env:"):
            name, sep, default = ref[4:].partition(":-")
            got = os.environ.get(name.strip())
            if got is None or (sep and got == ""):
                if not sep:
                    raise UsageError(f"{self.where}: {ctx}: environment variable {name.strip()} is not set "
                                     f"(write ${{env:{name.strip()}:-default}} to give a default)")
                return default
            return got
        if ref not in self.values:
            raise UsageError(f"{self.where}: {ctx}: {unknown_message('variable', ref, self.values)}")
        val = self.values[ref]
        return val if isinstance(val, str) else str(val)


def _scalar(raw: str) -> Any:
    """A value from the command line or the environment, read as YAML (``3`` is a number, ``true`` a bool);
    anything that is not a plain scalar stays the string it was."""
    import yaml

    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw
    return value if isinstance(value, (int, float, bool, str)) or value is None else raw


def _parse_set(items: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    import yaml

    plain: dict[str, Any] = {}
    per_step: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected NAME=VALUE or STEP.OPTION=VALUE")
        value: Any
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        key = key.strip()
        if "." in key:
            step, _, opt = key.partition(".")
            per_step.setdefault(step, {})[opt] = value
        else:
            plain[key] = value
    return plain, per_step


def load(path: str | Path, *, workdir: str | Path | None = None, sets: list[str] | None = None) -> Recipe:
    """Parse and check a recipe; ``sets`` are ``--set`` items. Paths are left as written (see ``plan``)."""
    import yaml

    from ..resources import seeds_dir, templates_dir

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"recipe {path} does not exist")
    text = path.read_bytes()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        hint = ""
        if re.search(rb"[\[{,]\s*\$\{", text):
            hint = " (inside [ ] or { }, quote a value that starts with ${: [\"${seeds}/x.json\"])"
        raise UsageError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}{hint}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: a recipe is a mapping with a 'steps:' list")
    for key in doc:
        if key not in TOP_KEYS:
            raise UsageError(f"{path}: {unknown_message('key', str(key), TOP_KEYS)}")
    steps_raw = doc.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise UsageError(f"{path}: 'steps:' must be a non-empty list")

    plain_sets, step_sets = _parse_set(sets or [])
    declared = doc.get("vars") or {}
    if not isinstance(declared, dict):
        raise UsageError(f"{path}: 'vars:' must be a mapping")
    for key in plain_sets:
        if key not in declared:
            raise UsageError(f"--set {key}=...: {unknown_message('recipe variable', key, declared)}")

    wd = workdir if workdir is not None else doc.get("workdir")
    values: dict[str, Any] = {
        "seeds": str(seeds_dir()), "templates": str(templates_dir()),
        "recipe_dir": str(path.resolve().parent),
        "workdir": str(Path(wd).resolve()) if wd else str(default_workdir(path, doc.get("name")).resolve()),
    }
    subst = _Subst(str(path), values)
    resolved_vars: dict[str, Any] = {}
    for key, val in declared.items():
        if key in BUILTINS:
            raise UsageError(f"{path}: variable {key!r} is built in; pick another name")
        val = plain_sets[key] if key in plain_sets else val
        values[key] = resolved_vars[key] = subst(val, f"vars.{key}")

    steps: list[Step] = []
    for i, raw in enumerate(steps_raw):
        steps.append(_step(raw, i, path, subst))
    names = [s.name for s in steps]
    for step_name, opts in step_sets.items():
        if step_name not in names:
            raise UsageError(f"--set {step_name}.…: {unknown_message('step', step_name, names)}")
        target = next(s for s in steps if s.name == step_name)
        for opt, value in opts.items():
            # Replace a spelling already in the recipe (max_steps vs max-steps) instead of adding a twin.
            for existing in [k for k in target.options if canonical(k) == canonical(opt)]:
                del target.options[existing]
            target.options[opt] = value
    _check_unique(steps, path)
    return Recipe(path=path, name=str(doc.get("name") or path.stem), description=str(doc.get("description") or ""),
                  workdir=values["workdir"], vars=resolved_vars, steps=steps, text=text)


def default_workdir(path: Path, name: Any = None) -> Path:
    """``build/<recipe name>`` under the current directory: never beside a shipped recipe."""
    return Path("build") / str(name or path.stem)


def _step(raw: Any, i: int, path: Path, subst: _Subst) -> Step:
    where = f"{path}: step {i + 1}"
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: a step is a mapping with name, kind, inputs, output, options")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"{where}: 'name' must be letters, digits, '-', '_' or '.' (got {name!r})")
    where = f"{path}: step {name!r}"
    for key in raw:
        if key not in STEP_KEYS:
            raise UsageError(f"{where}: {unknown_message('key', str(key), STEP_KEYS)} "
                             "(options go under 'options:')")
    kind = raw.get("kind")
    if not isinstance(kind, str):
        raise UsageError(f"{where}: 'kind' is required")
    output = subst(raw.get("output"), f"step {name!r} output")
    if not isinstance(output, str) or not output:
        raise UsageError(f"{where}: 'output' is required (a path inside the work folder)")
    pure = PurePosixPath(output)
    if pure.is_absolute() or ".." in pure.parts:
        raise UsageError(f"{where}: output {output!r} must be a relative path inside the work folder")
    inputs = subst(raw.get("inputs", []), f"step {name!r} inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, (list, dict)):
        raise UsageError(f"{where}: 'inputs' is a list of paths or a mapping of role: path")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise UsageError(f"{where}: 'options' must be a mapping")
    options = {str(k): subst(v, f"step {name!r} option {k}") for k, v in options.items()}
    return Step(name=name, kind=canonical(kind), inputs=inputs, output=str(pure), options=options,
                description=str(raw.get("description") or ""))


def _check_unique(steps: list[Step], path: Path) -> None:
    seen: dict[str, str] = {}
    outs: dict[str, str] = {}
    for s in steps:
        if s.name in seen:
            raise UsageError(f"{path}: two steps are named {s.name!r}")
        seen[s.name] = s.name
        if s.output in outs:
            raise UsageError(f"{path}: steps {outs[s.output]!r} and {s.name!r} both write {s.output!r}")
        outs[s.output] = s.name


def toposort(names: list[str], deps: dict[str, set[str]], *, where: str) -> list[str]:
    """Dependency order, ties broken by recipe order; a cycle raises naming it (``a -> b -> a``)."""
    done: list[str] = []
    placed: set[str] = set()
    remaining = list(names)
    while remaining:
        ready = [n for n in remaining if deps[n] <= placed]
        if not ready:
            raise UsageError(f"{where}: the steps form a cycle: {' -> '.join(_cycle(remaining, deps))} "
                             "(each step reads the output of the next)")
        first = ready[0]
        done.append(first)
        placed.add(first)
        remaining.remove(first)
    return done


def _cycle(remaining: list[str], deps: dict[str, set[str]]) -> list[str]:
    # Every remaining step waits on another remaining one, so walking any dependency chain must loop.
    pool = set(remaining)
    path: list[str] = []
    node = remaining[0]
    while node not in path:
        path.append(node)
        node = sorted(d for d in deps[node] if d in pool)[0]
    return [*path[path.index(node):], node]
