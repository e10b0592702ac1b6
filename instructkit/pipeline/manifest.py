"""The build manifest (lockfile): what went in, with which code and seeds, and what came out.

Deterministic by construction: no timestamps, no absolute paths (they become ``${workdir}``, ``${seeds}``,
``${recipe_dir}``), keys sorted, and funnel figures that measure time rather than data are left out. Two
builds of one recipe on the same inputs and code therefore write byte-identical manifests.
"""

from __future__ import annotations

import hashlib
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .state import digest

MANIFEST = "instructkit.lock.json"
LIBRARIES = ("torch", "transformers", "accelerate", "peft", "tokenizers", "datasets", "pydantic", "openai",
             "jinja2", "pyyaml", "orjson", "rapidfuzz", "pillow")
# Funnel keys that measure the run rather than the data (seconds, throughput) vary between identical builds.
_VOLATILE_KEY = re.compile(r"(^|_)(elapsed|seconds|secs|time|duration|wall|throughput|speed|per_s|rate_s)"
                           r"($|_)|_s$|_ms$|_per_sec(ond)?$")
_SECRET = re.compile(r"key|token|secret|password", re.I)


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def python_version() -> str:
    return ".".join(str(v) for v in sys.version_info[:3])


class Portable:
    """Rewrites absolute paths under known folders to ``${folder}/...`` so results do not depend on where
    the build ran."""

    def __init__(self, roots: dict[str, Path]):
        # Longest first: the work folder may sit inside the recipe folder.
        self.roots = sorted(((str(p.resolve()), name) for name, p in roots.items()), key=lambda t: -len(t[0]))

    def __call__(self, value: Any) -> Any:
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, str):
            for root, name in self.roots:
                if value == root:
                    return "${" + name + "}"
                if value.startswith(root + "/"):
                    return "${" + name + "}" + value[len(root):]
            return value
        if isinstance(value, dict):
            return {str(k): self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value


def stable_funnel(summary: Any, portable: Portable) -> Any:
    """The summary without run-time figures, with portable paths."""
    if isinstance(summary, dict):
        return {str(k): stable_funnel(v, portable) for k, v in summary.items()
                if not _VOLATILE_KEY.search(str(k))}
    if isinstance(summary, (list, tuple)):
        return [stable_funnel(v, portable) for v in summary]
    if isinstance(summary, float) and summary != summary:
        return "nan"        # JSON has no NaN; a string keeps the manifest valid and stable
    return portable(summary)


def redact(vars_: dict[str, Any]) -> dict[str, Any]:
    return {k: ("<redacted>" if _SECRET.search(k) else v) for k, v in vars_.items()}


def build(*, recipe_name: str, recipe_file: str, recipe_text: bytes, vars_: dict[str, Any],
          steps: list[dict], inputs: dict[str, str], portable: Portable) -> dict:
    from .. import __version__

    body = {
        "format": 1,
        "recipe": {"name": recipe_name, "file": recipe_file, "sha256": hashlib.sha256(recipe_text).hexdigest()},
        "instructkit": __version__,
        "python": python_version(),
        "libraries": library_versions(),
        "vars": portable(redact(vars_)),
        "inputs": dict(sorted(inputs.items())),
        "seeds": {s["name"]: s["seeds"] for s in steps if s["seeds"]},
        "steps": steps,
    }
    body["build_sha256"] = digest({"inputs": body["inputs"], "steps": [
        {"name": s["name"], "output_sha256": s["output_sha256"]} for s in steps]})
    return body


def dumps(manifest: dict) -> bytes:
    import json

    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode()
