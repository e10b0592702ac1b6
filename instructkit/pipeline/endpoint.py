"""LLM endpoint options of generating steps (adapt --rewrite, self-instruct): the same names as the
commands' LLM flags, turned into an ``LLMConfig``.

In a recipe the response cache defaults to ``<workdir>/.instructkit/llm.sqlite``, so a rerun after a failure
replays finished calls instead of paying for them again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError
from .options import Option

# name -> (keyword, default, changes the result?)
_LLM = {
    "model": ("model", "gpt-4o-mini", True),
    "base-url": ("base_url", None, False),    # where, not what: a restarted local server keeps the results
    "api-key": ("api_key", None, False),
    "concurrency": ("concurrency", 16, False),
    "rpm": ("rpm", None, False),
    "tpm": ("tpm", None, False),
    "max-retries": ("max_retries", 6, False),
    "timeout": ("timeout", 60.0, False),
    "cache": ("cache", None, False),
    "no-cache": ("no_cache", False, False),
    "cache-only": ("cache_only", False, False),
    "prices": ("prices", None, False),
    "max-cost": ("max_cost", None, False),
    "failed": ("failed", None, False),
}
LLM_KWARGS = frozenset(kw for kw, _d, _r in _LLM.values())
_PATHS = {"cache": "out", "prices": "in", "failed": "out"}


def llm_options() -> dict[str, Option]:
    return {name: Option(name, kw, default=d, result=r, path=_PATHS.get(name, False), secret=name == "api-key")
            for name, (kw, d, r) in _LLM.items()}


def pop_llm_config(kwargs: dict[str, Any], *, state_dir: Path, progress: bool = True) -> Any:
    """Take the LLM keywords out of ``kwargs`` and build the engine's config from them."""
    from ..llm import LLMConfig

    got = {kw: kwargs.pop(kw) for kw in list(kwargs) if kw in LLM_KWARGS}
    if got.get("no_cache") and got.get("cache_only"):
        raise UsageError("options no-cache and cache-only contradict each other")
    base = got.get("base_url") or ["https://api.openai.com/v1"]
    cache = got.get("cache") or state_dir / "llm.sqlite"
    return LLMConfig(model=got.get("model") or "gpt-4o-mini", base_urls=[base] if isinstance(base, str) else
                     list(base), api_key=got.get("api_key"), concurrency=got.get("concurrency") or 16,
                     rpm=got.get("rpm"), tpm=got.get("tpm"), max_retries=got.get("max_retries", 6),
                     timeout=got.get("timeout") or 60.0,
                     cache_path=None if got.get("no_cache") else Path(cache),
                     cache_mode="off" if got.get("no_cache") else "only" if got.get("cache_only") else "use",
                     prices_path=got.get("prices"), max_cost=got.get("max_cost"),
                     failed_path=got.get("failed"), progress=progress)
