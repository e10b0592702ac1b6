"""Counting: requests, retries, 429s, cache hits, tokens and money; token estimates for --dry-run."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LLMError
from .messages import text_of
from .types import Request

DEFAULT_PRICES = Path(__file__).with_name("prices.yaml")
# OpenAI bills a high-detail 512x512 image at 85 + 170 tokens per tile; a typical photo is 4 tiles (765).
IMAGE_TOKENS = 765
# Per-message framing tokens the chat format adds (role markers), as OpenAI's cookbook counts them.
MESSAGE_OVERHEAD = 4


@dataclass
class Price:
    input: float = 0.0
    cached_input: float = 0.0
    output: float = 0.0
    known: bool = False

    def cost(self, prompt: int, completion: int, cached: int = 0) -> float:
        cached = min(cached, prompt)
        return ((prompt - cached) * self.input + cached * self.cached_input + completion * self.output) / 1e6


class PriceTable:
    def __init__(self, extra: Path | None = None):
        self.models: dict[str, dict] = {}
        self._load(DEFAULT_PRICES)
        if extra is not None:
            self._load(Path(extra))

    def _load(self, path: Path) -> None:
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise LLMError(f"price table {path} cannot be read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise LLMError(f"price table {path} is not valid YAML: {exc}") from None
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, dict):
            raise LLMError(f"price table {path}: expected a mapping 'models: {{name: {{input, output}}}}'")
        for name, entry in models.items():
            if not isinstance(entry, dict) or "input" not in entry or "output" not in entry:
                raise LLMError(f"price table {path}: model {name!r} needs 'input' and 'output' (USD per 1M tokens)")
            self.models[str(name)] = entry

    def price(self, model: str) -> Price:
        entry = self.models.get(model)
        if entry is None:
            prefixes = [m for m in self.models if model.startswith(m)]
            entry = self.models[max(prefixes, key=len)] if prefixes else None
        if entry is None:
            return Price()
        return Price(float(entry["input"]), float(entry.get("cached_input", entry["input"])),
                     float(entry["output"]), True)


_encoder: object | None = None
_encoder_name: str | None = None


def tokenizer_name(model: str) -> str:
    _load_encoder(model)
    return _encoder_name or "estimate"


def _bpe_is_local(name: str) -> bool:
    """tiktoken fetches its BPE file over the network on first use (with no timeout); we use tiktoken only
    when that file is already in its cache, so a dry run never waits on the network."""
    import hashlib
    import os
    import tempfile

    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return False
    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    return os.path.exists(os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest()))


def _load_encoder(model: str) -> object | None:
    global _encoder, _encoder_name
    if _encoder_name is not None:
        return _encoder
    _encoder, _encoder_name = None, "estimate (max(words, characters/4) tokens)"
    try:
        import tiktoken
        import tiktoken.model

        try:
            name = tiktoken.model.encoding_name_for_model(model)
        except KeyError:
            name = "o200k_base"
        if _bpe_is_local(name):
            _encoder = tiktoken.get_encoding(name)
            _encoder_name = "tiktoken:" + name
    except Exception:  # noqa: BLE001 - not installed or unreadable: the estimate stands
        _encoder = None
    return _encoder


def count_text_tokens(text: str, model: str) -> int:
    encoder = _load_encoder(model)
    if encoder is not None:
        return len(encoder.encode(text, disallowed_special=()))
    if not text:
        return 0
    return max(len(text.split()), math.ceil(len(text) / 4))


def prompt_tokens(request: Request, model: str) -> int:
    text, images = text_of(request.messages)
    return count_text_tokens(text, model) + images * IMAGE_TOKENS + MESSAGE_OVERHEAD * len(request.messages) + 3


@dataclass
class Stats:
    rows: int = 0
    rows_ok: int = 0
    rows_failed: int = 0
    failed_by_reason: Counter = field(default_factory=Counter)
    requests: int = 0          # HTTP calls sent
    retries: int = 0           # calls repeated after a transient error
    http_429: int = 0
    http_5xx: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    empty_replies: int = 0
    bad_responses: int = 0
    parse_rejects: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    concurrency_min: float = 0.0
    concurrency_now: float = 0.0
    limit_cuts: int = 0

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "failed_by_reason"}
        out["failed_by_reason"] = dict(self.failed_by_reason)
        out["cost"] = round(self.cost, 6)
        return out


@dataclass
class Estimate:
    rows: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    max_completion_tokens: int = 0
    prompt_cost: float = 0.0
    max_cost: float = 0.0
    tokenizer: str = ""
    priced: bool = False
    model: str = ""
    missing_images: int = 0

    def summary(self) -> str:
        money = (f"${self.prompt_cost:.4f} for prompts, at most ${self.max_cost:.4f} with every reply at "
                 "max_tokens") if self.priced else f"no price known for {self.model} (cost 0; see --prices)"
        missing = f"; {self.missing_images} local images missing" if self.missing_images else ""
        return (f"dry run: {self.rows} requests to {self.model}, {self.prompt_tokens} prompt tokens, at most "
                f"{self.max_completion_tokens} completion tokens ({self.tokenizer}); estimated cost {money}"
                f"{missing}")

    def as_dict(self) -> dict:
        return dict(self.__dict__)
