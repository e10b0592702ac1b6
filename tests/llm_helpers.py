"""Shared bits of the LLM tests: a config pointed at a loopback server, requests, file readers."""

from __future__ import annotations

import json
from pathlib import Path

from instructkit.llm import LLMConfig, Request

SECRET = "sk-SECRET-7f3a9c1e5b2d4f60"


def config(base_urls, tmp_path: Path | None = None, **kw) -> LLMConfig:
    base = dict(model="loopback", base_urls=list(base_urls) if not isinstance(base_urls, str) else [base_urls],
                api_key=SECRET, concurrency=8, timeout=5.0, max_retries=6, backoff_base=0.01, progress=False,
                cache_path=tmp_path / "cache.sqlite" if tmp_path else None,
                failed_path=tmp_path / "failed.jsonl" if tmp_path else None)
    base.update(kw)
    return LLMConfig(**base)


def requests(n: int, prefix: str = "q", **kw) -> list[Request]:
    return [Request(key=f"{prefix}{i}", messages=[{"role": "user", "content": f"{prefix}{i}"}], **kw)
            for i in range(n)]


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def user_texts(server) -> list[str]:
    from instructkit.testing.server import last_user_text

    return [last_user_text(r["json"]) for r in server.requests if "json" in r]
