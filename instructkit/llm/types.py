"""The engine's public data: configuration, one request, one result, the parse-rejection signal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError

CACHE_MODES = ("use", "off", "only")


class ParseRejected(Exception):
    """Raised by a caller's parse hook: the reply is unusable; ask again (a new attempt) or fail the row."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass
class LLMConfig:
    model: str
    base_urls: list[str] = field(default_factory=lambda: ["https://api.openai.com/v1"])
    api_key: str | None = None
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    max_retries: int = 6
    timeout: float = 60.0
    cache_path: Path | None = None
    cache_mode: str = "use"
    prices_path: Path | None = None
    max_cost: float | None = None
    dry_run: bool = False
    failed_path: Path | None = None
    progress: bool = True
    # Tuning knobs with defaults that suit both OpenAI and local servers; tests shrink them.
    backoff_base: float = 0.25
    backoff_cap: float = 30.0
    reorder_window: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.base_urls, str):
            self.base_urls = [self.base_urls]
        if not self.base_urls:
            raise UsageError("at least one --base-url is needed")
        if self.concurrency < 1:
            raise UsageError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.cache_mode not in CACHE_MODES:
            raise UsageError(f"cache mode must be one of {', '.join(CACHE_MODES)}, got {self.cache_mode!r}")
        if self.cache_mode == "only" and self.cache_path is None:
            raise UsageError("--cache-only needs a cache file (--cache PATH)")
        for name in ("rpm", "tpm", "max_cost"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
        self.cache_path = Path(self.cache_path) if self.cache_path is not None else None
        self.failed_path = Path(self.failed_path) if self.failed_path is not None else None
        self.prices_path = Path(self.prices_path) if self.prices_path is not None else None

    def __repr__(self) -> str:
        # The key must never reach a log line or a traceback through repr().
        shown = {k: v for k, v in self.__dict__.items() if k != "api_key"}
        shown["api_key"] = "***" if self.api_key else None
        return "LLMConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


@dataclass
class Request:
    key: str
    messages: list[dict]
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = 1
    response_format: dict | None = None
    sample_index: int = 0
    meta: dict = field(default_factory=dict)


@dataclass
class Result:
    request: Request
    ok: bool
    text: str | None = None
    texts: list[str] = field(default_factory=list)
    parsed: Any = None
    finish_reason: str | None = None
    usage: dict = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None
    cached: bool = False
    attempts: int = 0
    raw: str | None = None
