"""Merge command-line inputs and options with a recipe (the command line wins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError
from .spec import MixOptions, load_recipe, parse_input


def build_options(inputs: list[str], recipe: Path | None, given: dict[str, Any]) -> tuple[MixOptions, Path, int]:
    """(options, output path, seed). Recipe inputs come first, then command-line inputs."""
    data: dict[str, Any] = load_recipe(recipe) if recipe else {"inputs": []}
    specs = list(data.pop("inputs", [])) + [parse_input(text) for text in inputs]
    for key, value in given.items():
        if value is not None:
            data[key] = value
    output = data.pop("output", None)
    if output is None:
        raise UsageError("no output: give -o/--output (or 'output' in the recipe)")
    if data.get("strategy") is None and data.get("batches") is None and (
            data.get("temperature") is not None or any(s.weight is not None for s in specs)):
        # Weights are interleave probabilities unless a strategy says otherwise (with --size).
        data["strategy"] = "interleave"
    seed = data.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed must be a whole number >= 0, not {seed!r}")
    try:
        opts = MixOptions(inputs=specs, **data)
    except TypeError as exc:
        raise UsageError(f"bad recipe option: {exc}") from None
    opts.check()
    return opts, Path(output), seed


def mix_from_command_line(inputs: list[str], recipe: Path | None, given: dict[str, Any], *,
                          manifest: Path | None = None, rejects: Path | None = None,
                          tmp_dir: Path | None = None, log=None, image_root: Path | None = None) -> dict:
    """What ``instructkit mix`` runs: merge the command line with the recipe, then ``run_mix``."""
    from .job import run_mix

    opts, output, seed = build_options(inputs, recipe, given)
    return run_mix(opts, output, seed=seed, manifest=manifest, rejects=rejects, tmp_dir=tmp_dir, log=log,
                   image_root=image_root)
