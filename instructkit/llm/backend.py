"""The backend protocol and the OpenAI-compatible backend (the project's only use of the ``openai`` SDK).

A backend takes one chat request (already in wire form) and returns a ``Completion`` or raises
``CallFailed`` with a short ``kind`` the engine uses to decide: retry, slow down, or give up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import LLMError

RETRYABLE = {"http-429", "http-5xx", "timeout", "connection", "empty", "bad-response", "http-408", "http-409"}


@dataclass
class Completion:
    texts: list[str]
    finish_reason: str | None
    usage: dict = field(default_factory=dict)
    headers: Any = None

    def to_cache(self) -> dict:
        return {"texts": self.texts, "finish_reason": self.finish_reason, "usage": self.usage}


class CallFailed(Exception):
    def __init__(self, kind: str, message: str, *, status: int | None = None, retry_after: float | None = None,
                 headers: Any = None, raw: str | None = None):
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.headers = headers
        self.raw = raw
        super().__init__(message)

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


class Backend(Protocol):
    url: str
    inflight: int

    async def complete(self, payload: dict) -> Completion: ...

    async def close(self) -> None: ...


def read_completion(content: bytes, headers: Any, url: str) -> Completion:
    """The reply body read with orjson rather than the SDK's model classes: building those objects costs
    about a third of a millisecond per call, and we keep four fields."""
    import orjson

    try:
        body = orjson.loads(content)
        choices = body["choices"]
        texts = [((c.get("message") or {}).get("content") or "") for c in choices]
        finish = choices[0].get("finish_reason") if choices else None
        usage = body.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        counted = {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
                   "completion_tokens": int(usage.get("completion_tokens") or 0),
                   "cached_tokens": int(details.get("cached_tokens") or 0)}
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise CallFailed("bad-response", f"unreadable reply from {url}: {type(exc).__name__}",
                         headers=headers, raw=content[:500].decode("utf-8", "replace")) from None
    if not texts or any(not t for t in texts):
        raise CallFailed("empty", f"empty reply from {url}", headers=headers, raw="")
    return Completion(texts, finish, counted, headers)


class OpenAIBackend:
    """One base URL. Calls are spread over several SDK clients, each with its own small connection pool:
    httpx's pool scans every connection on each request, which at 128 connections in one pool costs more
    CPU than the request itself."""

    POOL = 16

    def __init__(self, url: str, api_key: str, *, timeout: float, concurrency: int):
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        try:   # openai 3.x ships on httpx2; 1.x and 2.x on httpx
            import httpx2 as httpx
        except ImportError:
            import httpx

        self.url = url
        self.inflight = 0
        shards = max(1, -(-concurrency // self.POOL))
        per = -(-concurrency // shards) + 2
        self._clients = [
            AsyncOpenAI(base_url=url, api_key=api_key, max_retries=0, timeout=timeout,
                        http_client=DefaultAsyncHttpxClient(
                            timeout=timeout,
                            limits=httpx.Limits(max_connections=per, max_keepalive_connections=per)))
            for _ in range(shards)
        ]
        self._load = [0] * shards

    async def complete(self, payload: dict) -> Completion:
        import openai

        shard = min(range(len(self._clients)), key=self._load.__getitem__)
        self._load[shard] += 1
        self.inflight += 1
        body = dict(payload)
        model = body.pop("model")
        try:
            # Everything goes through extra_body: the SDK's TypedDict transform walks each message part
            # (about 0.2 ms a call) and our payload is already plain JSON.
            raw = await self._clients[shard].chat.completions.with_raw_response.create(
                model=model, messages=[], extra_body=body)
            headers = raw.headers
            content = raw.content
        except openai.APITimeoutError:
            raise CallFailed("timeout", f"no reply within the timeout from {self.url}") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise CallFailed("connection", f"connection to {self.url} failed: {type(cause).__name__}") from None
        except openai.APIStatusError as exc:
            raise _status_failure(exc, self.url) from None
        finally:
            self._load[shard] -= 1
            self.inflight -= 1
        return read_completion(content, headers, self.url)

    async def close(self) -> None:
        for client in self._clients:
            await client.close()


def _status_failure(exc: Any, url: str) -> Exception:
    from .limiter import retry_after

    status = exc.status_code
    headers = exc.response.headers
    body_text = _safe_text(exc.response)
    if status == 429 and "insufficient_quota" in body_text:
        # OpenAI's "no credit left": a 429 that no backoff cures, on every row alike.
        return LLMError(f"{url}: quota exceeded (check your plan and billing details): HTTP 429")
    if status == 400 and ("unsupported_parameter" in body_text or "unsupported_value" in body_text):
        # The model refuses a parameter we send (max_tokens or temperature on a reasoning model): every row
        # would fail alike, so it ends the run with the server's own words.
        return LLMError(f"{url}: the model refuses a request parameter: {_error_message(body_text)}: HTTP 400")
    if status == 429:
        return CallFailed("http-429", f"rate limited by {url}", status=status, headers=headers,
                          retry_after=retry_after(headers), raw=body_text)
    if status >= 500:
        return CallFailed("http-5xx", f"server error {status} from {url}", status=status, headers=headers,
                          raw=body_text)
    if status in (401, 403, 404):
        what = {401: "authentication failed (check --api-key / OPENAI_API_KEY)", 403: "permission denied",
                404: "not found (check --base-url and --model)"}[status]
        return LLMError(f"{url}: {what}: HTTP {status}")
    return CallFailed(f"http-{status}", f"HTTP {status} from {url}: {body_text[:300]}", status=status,
                      headers=headers, raw=body_text)


def _error_message(body_text: str) -> str:
    import orjson

    try:
        return str(orjson.loads(body_text)["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return body_text[:300]


def _safe_text(response: Any) -> str:
    try:
        return response.text
    except Exception:  # noqa: BLE001 - body unreadable after a failure
        return ""
