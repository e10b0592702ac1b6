"""The shared LLM flags build the engine's config the same way in every command."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from instructkit.cli._common import run
from instructkit.cli.llm_options import (
    DEFAULT_CACHE,
    ApiKey,
    BaseUrl,
    Cache,
    CacheOnly,
    Concurrency,
    DryRun,
    Failed,
    MaxCost,
    MaxRetries,
    Model,
    NoCache,
    Prices,
    Rpm,
    Timeout,
    Tpm,
    llm_config,
)


def _app(seen: dict) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def gen(model: Model = "gpt-4o-mini", base_url: BaseUrl = None, api_key: ApiKey = None,
            concurrency: Concurrency = 16, rpm: Rpm = None, tpm: Tpm = None, max_retries: MaxRetries = 6,
            timeout: Timeout = 60.0, cache: Cache = DEFAULT_CACHE, no_cache: NoCache = False,
            cache_only: CacheOnly = False, prices: Prices = None, max_cost: MaxCost = None,
            dry_run: DryRun = False, failed: Failed = None) -> None:
        seen["cfg"] = run(llm_config, model=model, base_url=base_url, api_key=api_key, concurrency=concurrency,
                          rpm=rpm, tpm=tpm, max_retries=max_retries, timeout=timeout, cache=cache,
                          no_cache=no_cache, cache_only=cache_only, prices=prices, max_cost=max_cost,
                          dry_run=dry_run, failed=failed)

    @app.command()
    def other() -> None:
        pass

    return app


def test_flags_build_the_config():
    seen: dict = {}
    result = CliRunner().invoke(_app(seen), ["gen", "--model", "qwen", "--base-url", "http://a/v1", "--base-url",
                                             "http://b/v1", "--concurrency", "64", "--rpm", "100", "--max-cost",
                                             "2.5", "--cache-only", "--cache", "c.sqlite", "--failed", "f.jsonl",
                                             "--dry-run"])
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert cfg.model == "qwen" and cfg.base_urls == ["http://a/v1", "http://b/v1"] and cfg.concurrency == 64
    assert cfg.rpm == 100 and cfg.max_cost == 2.5 and cfg.cache_mode == "only" and cfg.dry_run
    assert cfg.cache_path == Path("c.sqlite") and cfg.failed_path == Path("f.jsonl")


def test_defaults_and_no_cache():
    seen: dict = {}
    assert CliRunner().invoke(_app(seen), ["gen"]).exit_code == 0
    cfg = seen["cfg"]
    assert cfg.base_urls == ["https://api.openai.com/v1"] and cfg.cache_path == DEFAULT_CACHE
    assert cfg.cache_mode == "use" and cfg.api_key is None
    assert CliRunner().invoke(_app(seen), ["gen", "--no-cache"]).exit_code == 0
    assert seen["cfg"].cache_mode == "off" and seen["cfg"].cache_path is None


def test_contradicting_or_bad_flags_exit_1_with_a_message():
    result = CliRunner().invoke(_app({}), ["gen", "--no-cache", "--cache-only"])
    assert result.exit_code == 1 and "contradict" in result.output
    result = CliRunner().invoke(_app({}), ["gen", "--max-cost", "-1"])
    assert result.exit_code == 1 and "--max-cost must be positive" in result.output
    result = CliRunner().invoke(_app({}), ["gen", "--help"])
    assert "--base-url" in result.output and "OPENAI_API_KEY" in result.output
