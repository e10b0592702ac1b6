"""The LLM flags every generating command declares, with one help text each, and the config they build.

    from .llm_options import Model, BaseUrl, ApiKey, ..., llm_config
    def cmd(..., model: Model = "gpt-4o-mini", base_url: BaseUrl = None, ...):
        cfg = llm_config(model=model, base_url=base_url, ...)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DEFAULT_CACHE = Path(".instructkit-cache/llm.sqlite")
PANEL = "LLM endpoint"

Model = Annotated[str, typer.Option("--model", help="Model name the endpoint serves (e.g. gpt-4o-mini, "
                                    "Qwen/Qwen2.5-7B-Instruct, llama3.1).", rich_help_panel=PANEL)]
BaseUrl = Annotated[Optional[list[str]], typer.Option(
    "--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM), "
    "http://localhost:11434/v1 (Ollama), http://localhost:8080/v1 (llama.cpp). Repeat to load-balance "
    "over several servers. Default: https://api.openai.com/v1.", rich_help_panel=PANEL)]
ApiKey = Annotated[Optional[str], typer.Option(
    "--api-key", help="API key; default $OPENAI_API_KEY. Local servers accept any key. Never written to "
    "cache, logs or output.", rich_help_panel=PANEL, show_default=False)]
Concurrency = Annotated[int, typer.Option("--concurrency", min=1, help="Most calls in flight at once (the "
                                          "engine lowers it on 429 storms and raises it back).",
                                          rich_help_panel=PANEL)]
Rpm = Annotated[Optional[float], typer.Option("--rpm", help="Requests-per-minute budget.", rich_help_panel=PANEL)]
Tpm = Annotated[Optional[float], typer.Option("--tpm", help="Tokens-per-minute budget (prompt estimate + "
                                              "max_tokens per call).", rich_help_panel=PANEL)]
MaxRetries = Annotated[int, typer.Option("--max-retries", min=0, help="Retries per call on 429, 5xx, timeouts, "
                                         "connection errors and empty replies (exponential backoff, jitter).",
                                         rich_help_panel=PANEL)]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait for one reply.", rich_help_panel=PANEL)]
Cache = Annotated[Path, typer.Option("--cache", help="SQLite response cache; a rerun replays finished calls "
                                     "for free.", rich_help_panel=PANEL)]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the cache.",
                                       rich_help_panel=PANEL)]
CacheOnly = Annotated[bool, typer.Option("--cache-only", help="Replay from the cache, never call the network; a "
                                         "miss is a failed row (reason cache-miss).", rich_help_panel=PANEL)]
Prices = Annotated[Optional[Path], typer.Option("--prices", help="YAML price table (USD per 1M tokens) merged "
                                                "over the shipped one.", rich_help_panel=PANEL)]
MaxCost = Annotated[Optional[float], typer.Option("--max-cost", help="Stop before the spend (USD) could exceed "
                                                  "this; finished rows are written, the rest resume on rerun.",
                                                  rich_help_panel=PANEL)]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Render every prompt, count tokens and print the "
                                      "estimated cost; call nothing.", rich_help_panel=PANEL)]
Failed = Annotated[Optional[Path], typer.Option("--failed", help="JSONL of rows that failed after all retries, "
                                                "with reason and error.", rich_help_panel=PANEL)]


def llm_config(*, model: str, base_url: list[str] | None = None, api_key: str | None = None,
               concurrency: int = 16, rpm: float | None = None, tpm: float | None = None,
               max_retries: int = 6, timeout: float = 60.0, cache: Path = DEFAULT_CACHE,
               no_cache: bool = False, cache_only: bool = False, prices: Path | None = None,
               max_cost: float | None = None, dry_run: bool = False, failed: Path | None = None,
               progress: bool = True):
    """Build the engine's config from the flags (imports the library lazily, like every command)."""
    from ..errors import UsageError
    from ..llm import LLMConfig

    if no_cache and cache_only:
        raise UsageError("--no-cache and --cache-only contradict each other")
    return LLMConfig(model=model, base_urls=list(base_url or ["https://api.openai.com/v1"]), api_key=api_key,
                     concurrency=concurrency, rpm=rpm, tpm=tpm, max_retries=max_retries, timeout=timeout,
                     cache_path=None if no_cache else cache,
                     cache_mode="off" if no_cache else "only" if cache_only else "use",
                     prices_path=prices, max_cost=max_cost, dry_run=dry_run, failed_path=failed,
                     progress=progress)
