"""Running a recipe: plan (resolve inputs, options, order), skip what is unchanged, run the rest, write the
manifest.

A step is skipped when its fingerprint — kind, options, the content hash of every input, the source of the
code that runs it and the versions of the libraries that shape its result — equals the one stored when it
last finished, and its output is still there with the hash it had then. Downstream steps see upstream
*output* hashes, so a change reruns a step and whatever its new output feeds; a step whose output comes out
identical stops the wave there. A failing step stops the run; the state of finished steps is already on disk,
so the next run resumes at the failed step.
"""

from __future__ import annotations

import contextlib
import importlib.util
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import InstructkitError, UsageError
from . import kinds as kinds_mod
from .manifest import MANIFEST, Portable, build, dumps, library_versions, stable_funnel
from .options import Option, canonical, closest, resolve
from .recipe import Recipe, Step, load, toposort
from .state import STATE_DIR, Hasher, StepStates, digest

Log = Callable[[str], None]
# Options a recipe step cannot take, with what to do instead.
REFUSED = {"dry-run": "a recipe has no per-step dry run; use `instructkit run --plan`, or run the command "
                      "itself with --dry-run"}


class StepFailed(InstructkitError):
    """A step raised; the steps before it finished and are kept."""

    def __init__(self, step: str, kind: str, message: str, done: list[str], state_dir: Path):
        self.step, self.done = step, done
        kept = f"finished steps kept: {', '.join(done)}" if done else "no step had finished"
        super().__init__(f"step {step!r} ({kind}) failed: {message}\n{kept}; fix it and run again to "
                         f"resume (state in {state_dir})")


@dataclass
class Ref:
    display: str            # the name the manifest uses: a step output or a portable path
    path: Path
    producer: str | None    # the step that writes it, if any


@dataclass
class Planned:
    step: Step
    kind: kinds_mod.Kind
    output: Path
    kwargs: dict[str, Any] = field(default_factory=dict)
    view: dict[str, Any] = field(default_factory=dict)       # options as written, for fingerprint/manifest
    inputs: list[Path] | dict[str, Any] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    seeds: dict[str, Any] = field(default_factory=dict)
    input_options: list[dict[str, Any]] = field(default_factory=list)

    @property
    def deps(self) -> set[str]:
        return {r.producer for r in self.refs if r.producer}


def find_recipe(name: str | Path) -> Path:
    """A path, or the name of a shipped recipe (``quickstart`` / ``llava15-mini.yaml``)."""
    path = Path(name)
    if path.is_file():
        return path
    if len(path.parts) == 1:
        from ..resources import recipes_dir

        try:
            shipped = recipes_dir()
        except InstructkitError:
            shipped = None
        if shipped is not None:
            for cand in (shipped / path.name, shipped / f"{path.name}.yaml"):
                if cand.is_file():
                    return cand
            names = sorted(p.stem for p in shipped.glob("*.yaml"))
            near = closest(path.stem, names)
            raise UsageError(f"recipe {name} does not exist" + (f"; did you mean the shipped recipe {near!r}?"
                                                                 if near else
                                                                 f"; shipped recipes: {', '.join(names)}"))
    raise UsageError(f"recipe {name} does not exist")


def plan(recipe: Recipe) -> tuple[list[Planned], Portable, Path]:
    """Resolve every step against the recipe and each other; order them. Raises on any recipe error."""
    workdir = Path(recipe.workdir or ".")
    recipe_dir = recipe.path.resolve().parent
    from ..resources import seeds_dir, templates_dir

    portable = Portable({"workdir": workdir, "seeds": seeds_dir(), "templates": templates_dir(),
                         "recipe_dir": recipe_dir})
    producers = {s.output: s.name for s in recipe.steps}
    planned: dict[str, Planned] = {}
    for step in recipe.steps:
        where = f"{recipe.path}: step {step.name!r}"
        try:
            kind = kinds_mod.get(step.kind)
            kind.options()                       # a stage missing from this build fails here, named
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        p = Planned(step=step, kind=kind, output=workdir / step.output)
        _plan_inputs(p, where, producers, workdir, recipe_dir, portable)
        _plan_options(p, where, producers, workdir, recipe_dir, portable)
        planned[step.name] = p
    order = toposort([s.name for s in recipe.steps], {n: p.deps for n, p in planned.items()},
                     where=str(recipe.path))
    return [planned[n] for n in order], portable, workdir


def _ref(value: Any, what: str, where: str, producers: dict[str, str], workdir: Path, recipe_dir: Path,
         portable: Portable, self_name: str) -> Ref:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{where}: {what} must be a path, got {value!r}")
    value = _as_output_name(value, workdir)
    if value in producers:
        if producers[value] == self_name:
            raise UsageError(f"{where}: the steps form a cycle: {self_name} -> {self_name} "
                             f"(it reads its own output {value!r})")
        return Ref(value, workdir / value, producers[value])
    path = Path(value)
    path = path if path.is_absolute() else recipe_dir / path
    if not path.exists():
        near = closest(value, producers)
        hint = f"; did you mean the output {near!r}?" if near else (
            f"; step outputs: {', '.join(sorted(producers))}")
        raise UsageError(f"{where}: {what} {value!r} is not the output of any step and no such file exists "
                         f"({path}){hint}")
    return Ref(portable(str(path.resolve())), path, None)


def _as_output_name(value: str, workdir: Path) -> str:
    """``./data/x.jsonl`` and ``${workdir}/data/x.jsonl`` name the output ``data/x.jsonl``."""
    path = Path(value)
    if path.is_absolute():
        with contextlib.suppress(ValueError):
            return path.resolve().relative_to(workdir.resolve()).as_posix()
        return value
    return PurePosixPath(value).as_posix()


def _plan_inputs(p: Planned, where: str, producers: dict[str, str], workdir: Path, recipe_dir: Path,
                 portable: Portable) -> None:
    kind, raw = p.kind, p.step.inputs

    def one(value: Any, what: str) -> Path:
        ref = _ref(value, what, where, producers, workdir, recipe_dir, portable, p.step.name)
        p.refs.append(ref)
        return ref.path

    if kind.inputs == "none":
        if raw:
            raise UsageError(f"{where}: a {kind.name} step takes no inputs")
        p.inputs = []
        return
    if isinstance(raw, dict):
        if kind.inputs != "roles":
            raise UsageError(f"{where}: a {kind.name} step takes a list of inputs, not a mapping")
        roles = {canonical(r): r for r in kind.roles}
        out: dict[str, Any] = {}
        for key, value in raw.items():
            role = canonical(key)
            if role not in roles:
                from .options import unknown_message

                raise UsageError(f"{where}: {unknown_message('input', str(key), roles)}")
            if isinstance(value, list):
                out[roles[role]] = [one(v, f"input {key}") for v in value]
            else:
                out[roles[role]] = one(value, f"input {key}")
        p.inputs = out
        return
    paths = []
    for v in raw:
        if isinstance(v, dict):
            # {path: x.jsonl, w: 0.3, name: text}: per-input options (mix weights, caps, names).
            extra = {k: val for k, val in v.items() if k != "path"}
            if "path" not in v:
                raise UsageError(f"{where}: an input given as a mapping needs 'path'")
            for k in extra:
                if k not in kind.input_options:
                    from .options import unknown_message

                    raise UsageError(f"{where}: input {v['path']!r}: "
                                     + unknown_message("input option", str(k), kind.input_options))
            paths.append(one(v["path"], "input"))
            p.input_options.append(extra)
        else:
            paths.append(one(v, "input"))
            p.input_options.append({})
    if kind.inputs == "roles":
        # A plain list fills the roles in order (adapt: questions, then annotations).
        if len(paths) > len(kind.roles):
            raise UsageError(f"{where}: a {kind.name} step takes at most {len(kind.roles)} inputs "
                             f"({', '.join(kind.roles)}), got {len(paths)}")
        p.inputs = dict(zip(kind.roles, paths))
        return
    if not paths:
        raise UsageError(f"{where}: a {kind.name} step needs at least one input")
    if kind.inputs == "one" and len(paths) != 1:
        raise UsageError(f"{where}: a {kind.name} step takes exactly one input, got {len(paths)}")
    p.inputs = paths


def _plan_options(p: Planned, where: str, producers: dict[str, str], workdir: Path, recipe_dir: Path,
                  portable: Portable) -> None:
    roles = {canonical(r) for r in p.kind.roles}
    for name in p.step.options:
        if canonical(name) in REFUSED:
            raise UsageError(f"{where}: option {name!r}: {REFUSED[canonical(name)]}")
        if canonical(name) in roles:
            raise UsageError(f"{where}: {name!r} is an input of the {p.kind.name} step: give it under "
                             f"'inputs:' ({canonical(name)}: PATH) so that its content is tracked")
    spec = p.kind.options()
    resolved = resolve(p.step.options, spec, where=where)
    for name in p.kind.required:
        if spec[name].kwarg not in resolved:
            raise UsageError(f"{where}: option {name!r} is required for a {p.kind.name} step")
    for kwarg, (opt, value) in resolved.items():
        shown = value                    # the fingerprint and manifest keep what the recipe says
        if opt.convert is not None and value is not None:
            try:
                value = opt.convert(value)
            except UsageError as exc:
                raise UsageError(f"{where}: option {opt.name!r}: {exc}") from None
        if opt.path:
            value, shown = _path_option(p, opt, value, where, producers, workdir, recipe_dir, portable)
        p.kwargs[kwarg] = value
        if opt.result and not opt.secret:
            p.view[opt.name] = portable(shown)
    for opt in spec.values():
        if opt.kwarg == "seed" or opt.kwarg.endswith("_seed"):
            p.seeds[opt.name] = p.view.get(opt.name, opt.default)


def _path_option(p: Planned, opt: Option, value: Any, where: str, producers: dict[str, str], workdir: Path,
                 recipe_dir: Path, portable: Portable) -> tuple[Any, Any]:
    """(value for the job, value for the fingerprint) of a path option; files it reads become inputs."""
    if isinstance(value, list):
        pairs = [_path_option(p, opt, v, where, producers, workdir, recipe_dir, portable) for v in value]
        return [a for a, _ in pairs], [b for _, b in pairs]
    if not isinstance(value, str) or not value:
        return value, value
    if opt.path == "out":
        path = Path(value)
        path = path if path.is_absolute() else workdir / path
        return str(path), portable(str(path.resolve()))
    if _as_output_name(value, workdir) in producers:
        ref = _ref(value, f"option {opt.name!r}", where, producers, workdir, recipe_dir, portable, p.step.name)
        p.refs.append(ref)
        return str(ref.path), ref.display
    path = Path(value)
    path = path if path.is_absolute() else recipe_dir / path
    if opt.path == "maybe" and not path.exists():
        return value, value                     # a name (a template family), not a path
    if path.is_file():                          # small side inputs (examples, prices): changes rerun the step
        p.refs.append(Ref(portable(str(path.resolve())), path, None))
    return str(path), portable(str(path.resolve()))


_CODE: dict[str, str] = {}


def code_version(kind: kinds_mod.Kind) -> str:
    """sha256 of the source files of the kind's modules (plus the record schema and the formats), and the
    versions of the libraries that shape its result."""
    if kind.name in _CODE:
        return _CODE[kind.name]
    from .. import __version__

    files: list[Path] = []
    for module in (*kind.code, "instructkit.records", "instructkit.formats"):
        spec = importlib.util.find_spec(module)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                files.extend(sorted(Path(loc).rglob("*.py")))
        elif spec.origin:
            files.append(Path(spec.origin))
    import hashlib

    sources = [[f.name, hashlib.sha256(f.read_bytes()).hexdigest()] for f in files]
    _CODE[kind.name] = digest({"instructkit": __version__, "sources": sources,
                               "libraries": library_versions(kind.libs) if kind.libs else {}})
    return _CODE[kind.name]


def run_recipe(recipe_path: str | Path, *, workdir: str | Path | None = None, sets: list[str] | None = None,
               force: list[str] | None = None, until: str | None = None, plan_only: bool = False,
               log: Log | None = None) -> dict:
    """Run (or, with ``plan_only``, only plan) a recipe; return ``{steps: [...], manifest: path|None}``.

    ``force`` names steps to rerun even if unchanged (``all`` for every step); ``until`` stops after that
    step (running only what it needs).
    """
    say = log or (lambda _m: None)
    recipe = load(find_recipe(recipe_path), workdir=workdir, sets=sets)
    steps, portable, workdir = plan(recipe)
    names = [p.step.name for p in steps]
    forced = set(force or [])
    for f in forced - {"all"}:
        if f not in names:
            recipe.step(f)        # raises naming the closest step
    if until is not None:
        recipe.step(until)
        needed = _ancestors(until, {p.step.name: p.deps for p in steps})
        steps = [p for p in steps if p.step.name in needed]

    state_dir = workdir / STATE_DIR
    with _exclusive(state_dir, enabled=not plan_only):
        return _execute(recipe, steps, portable, workdir, state_dir, forced, plan_only, say)


@contextlib.contextmanager
def _exclusive(state_dir: Path, *, enabled: bool) -> Iterator[None]:
    """One run per work folder at a time: two would race on the same outputs and state files."""
    if not enabled:
        yield
        return
    try:
        import fcntl
    except ImportError:                      # Windows: no advisory locks; runs are not guarded
        yield
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "lock", "a") as fh:      # "a": taking the lock must not touch the file
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(f"another `instructkit run` is using {state_dir.parent}; wait for it to finish "
                             "or pick another --workdir") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _execute(recipe: Recipe, steps: list[Planned], portable: Portable, workdir: Path, state_dir: Path,
             forced: set[str], plan_only: bool, say: Log) -> dict:
    hasher = Hasher(state_dir / "hashes.json", workdir, readonly=plan_only)
    states = StepStates(state_dir)
    out_hash: dict[str, str | None] = {}
    report: list[dict] = []
    entries: list[dict] = []
    external: dict[str, str] = {}
    done: list[str] = []
    total = len(steps)
    try:
        for i, p in enumerate(steps, 1):
            name = p.step.name
            label = f"[{i}/{total}] {name} ({p.kind.name})"
            unknown_upstream = [r.producer for r in p.refs if r.producer and out_hash.get(r.producer) is None]
            if unknown_upstream:            # plan mode: an upstream step would run, its output is unknown yet
                say(f"{label}: would run (after {', '.join(unknown_upstream)})")
                report.append({"name": name, "kind": p.kind.name, "status": "would-run"})
                out_hash[name] = None
                continue
            input_hashes = []
            for r in p.refs:
                h = out_hash[r.producer] if r.producer else hasher.path(r.path)
                input_hashes.append([r.display, h])
                if not r.producer:
                    external[r.display] = h
            fingerprint = digest({"kind": p.kind.name, "options": p.view, "inputs": input_hashes,
                                  "input_options": p.input_options,
                                  "output": p.step.output, "code": code_version(p.kind)})
            prev = states.get(name)
            fresh = (prev is not None and prev.get("fingerprint") == fingerprint and p.output.exists()
                     and hasher.path(p.output) == prev.get("output_sha256"))
            if fresh and "all" not in forced and name not in forced:
                say(f"{label}: unchanged, skipped")
                status, summary, output_hash = ("skipped" if not plan_only else "would-skip"), \
                    prev["summary"], prev["output_sha256"]
            elif plan_only:
                why = "forced" if fresh else "changed" if prev else "not built yet"
                say(f"{label}: would run ({why})")
                report.append({"name": name, "kind": p.kind.name, "status": "would-run"})
                out_hash[name] = None
                continue
            else:
                say(f"{label}: running")
                states.drop(name)
                summary = _call(p, say, done, state_dir)
                if not p.output.exists():
                    raise StepFailed(name, p.kind.name, f"it finished but wrote no {p.step.output}", done,
                                     state_dir)
                output_hash = hasher.path(p.output)
                states.put(name, {"fingerprint": fingerprint, "output_sha256": output_hash, "summary": summary})
                hasher.save()
                status = "ran"
            done.append(name)
            out_hash[name] = output_hash
            report.append({"name": name, "kind": p.kind.name, "status": status})
            entries.append({"name": name, "kind": p.kind.name, "options": p.view,
                            **({"input_options": p.input_options} if any(p.input_options) else {}),
                            "inputs": dict(input_hashes), "output": p.step.output,
                            "output_sha256": output_hash, "code_sha256": code_version(p.kind),
                            "seeds": p.seeds, "funnel": stable_funnel(summary, portable)})
    finally:
        hasher.save()

    result: dict[str, Any] = {"steps": report, "workdir": str(workdir), "manifest": None}
    ran = [r["name"] for r in report if r["status"] == "ran"]
    if plan_only:
        return result
    manifest = build(recipe_name=recipe.name, recipe_file=portable(str(recipe.path.resolve())),
                     recipe_text=recipe.text, vars_=recipe.vars, steps=entries, inputs=external,
                     portable=portable)
    from ..formats.atomic import atomic_write

    target = workdir / MANIFEST
    data = dumps(manifest)
    if not target.is_file() or target.read_bytes() != data:
        with atomic_write(target, "wb") as fh:
            fh.write(data)
    result["manifest"] = str(target)
    result["build_sha256"] = manifest["build_sha256"]
    say(f"done: {len(ran)} step(s) ran, {len(report) - len(ran)} unchanged; manifest {target}")
    return result


def _call(p: Planned, say: Log, done: list[str], state_dir: Path) -> dict:
    name = p.step.name
    p.output.parent.mkdir(parents=True, exist_ok=True)
    call = kinds_mod.Call(step=name, inputs=p.inputs, output=p.output, kwargs=dict(p.kwargs),
                          log=lambda m: say("\n".join(f"  {name}: {line}" for line in str(m).splitlines())),
                          state_dir=state_dir,
                          input_options=p.input_options)
    try:
        summary = p.kind.run(call)
    except InstructkitError as exc:
        raise StepFailed(name, p.kind.name, str(exc), list(done), state_dir) from exc
    except Exception as exc:
        # A bug or a library failure: keep the traceback where the user can send it, say where it is.
        log_file = state_dir / "logs" / f"{name}.traceback.txt"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(traceback.format_exc(), encoding="utf-8")
        raise StepFailed(name, p.kind.name, f"{type(exc).__name__}: {exc} (traceback in {log_file})",
                         list(done), state_dir) from exc
    return summary if isinstance(summary, dict) else {"result": summary}


def _ancestors(name: str, deps: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = [name]
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(deps.get(n, ()))
    return seen


__all__ = ["StepFailed", "find_recipe", "plan", "run_recipe"]
