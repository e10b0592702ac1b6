"""Step options: the CLI's option names, spelled with dashes or underscores, mapped to job keyword arguments.

A recipe says ``max-steps: 3`` or ``max_steps: 3`` exactly as the user would type ``--max-steps 3``; each step
kind maps those names to the keyword arguments of its stage's job function. An unknown name is an error that
names the closest valid one, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError


def canonical(name: str) -> str:
    """``--max_steps`` / ``max-steps`` / ``max_steps`` all become ``max-steps``."""
    return str(name).strip().lstrip("-").replace("_", "-").lower()


@dataclass(frozen=True)
class Option:
    """One option of a step kind. ``name`` is the CLI spelling without leading dashes."""

    name: str
    kwarg: str
    convert: Callable[[Any], Any] | None = None
    # "in": a file or folder the step reads; a relative value resolves against the recipe's folder, may
    # name a step's output, and a file (not a folder) is hashed like an input. "maybe": the same, but only
    # when such a path exists (``templates: vqa-short`` is a name, not a path). "out": a side file the
    # step writes (rejects, funnel); relative to the work folder, never hashed.
    path: bool | str = False
    default: Any = None       # what the job uses when the recipe leaves it out (recorded for seeds)
    result: bool = True       # False: changes how a step runs (speed, transport), not what it makes
    secret: bool = False      # never written to state files or the manifest


def closest(name: str, valid: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.5)
    return found[0] if found else None


def unknown_message(what: str, name: str, valid: Iterable[str]) -> str:
    valid = sorted(valid)
    near = closest(name, valid)
    hint = f"did you mean {near!r}?" if near else f"valid: {', '.join(valid) or '(none)'}"
    return f"unknown {what} {name!r}; {hint}"


def resolve(options: dict[str, Any], spec: dict[str, Option], *, where: str) -> dict[str, tuple[Option, Any]]:
    """Map recipe option names to their ``Option``; unknown or doubled names raise ``UsageError``."""
    out: dict[str, tuple[Option, Any]] = {}
    for raw, value in options.items():
        name = canonical(raw)
        opt = spec.get(name)
        if opt is None:
            raise UsageError(f"{where}: {unknown_message('option', str(raw), spec)}")
        if opt.kwarg in out:
            raise UsageError(f"{where}: option {raw!r} given twice (as {out[opt.kwarg][0].name!r} too)")
        out[opt.kwarg] = (opt, value)
    return out


def comma_list(value: Any) -> list[str]:
    """A CLI comma list (``vision,projector``) or a YAML list: both become a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise UsageError(f"expected a comma-separated string or a list, got {value!r}")


def as_list(value: Any) -> list:
    """A repeatable CLI option: one value or a YAML list (no comma splitting: regexes contain commas)."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def negate(value: Any) -> bool:
    """For ``--no-x`` flags that set a positive keyword argument."""
    if not isinstance(value, bool):
        raise UsageError(f"expected true or false, got {value!r}")
    return not value


def from_signature(fn: Callable[..., Any], *, skip: Iterable[str] = (), rename: dict[str, str] | None = None,
                   paths: Iterable[str] = (), maybe_paths: Iterable[str] = (), out_paths: Iterable[str] = (),
                   transport: Iterable[str] = ()) -> dict[str, Option]:
    """Options from a job function's keyword parameters: ``image_root`` is the option ``image-root``.

    ``rename`` maps CLI names that differ from the keyword (``from`` -> ``fmt``); ``paths`` names options
    whose values are paths.
    """
    import inspect

    skip = set(skip) | {"log", "self"}
    rename = {canonical(k): v for k, v in (rename or {}).items()}
    kinds = ({canonical(p): "in" for p in paths} | {canonical(p): "maybe" for p in maybe_paths}
             | {canonical(p): "out" for p in out_paths})
    transport = {canonical(t) for t in transport}
    spec: dict[str, Option] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name in skip or p.name.startswith("_") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        name = canonical(p.name)
        default = None if p.default is inspect.Parameter.empty else p.default
        spec[name] = Option(name, p.name, path=kinds.get(name, False), default=default,
                            result=name not in transport)
    for cli, kwarg in rename.items():
        old = spec.pop(canonical(kwarg), None)
        spec[cli] = Option(cli, kwarg, path=kinds.get(cli, False), default=old.default if old else None,
                           result=cli not in transport)
    return spec
