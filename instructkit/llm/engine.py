"""The engine: a synchronous, ordered iterator of results over an asynchronous, bounded, adaptive,
cached, cost-capped stream of chat calls.

Threads: the caller's thread pulls requests lazily, submits them to an event loop running in a background
thread, and yields results in input order; the loop thread owns the HTTP clients, the limiter and the cache.
At most ``reorder_window`` requests are outstanding, so memory stays flat on any input size.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

from ..errors import LLMError, RowError
from .accounting import Estimate, PriceTable, Stats, prompt_tokens, tokenizer_name
from .backend import Backend, CallFailed, Completion, OpenAIBackend
from .cache import ResponseCache, cache_key
from .limiter import AdaptiveLimiter
from .messages import key_view, missing_images, wire_messages
from .types import LLMConfig, ParseRejected, Request, Result

Parse = Callable[[str, str], Any]
_FAILED_FILES_OPENED: set[str] = set()


class _Stopped(Exception):
    """The budget would be exceeded by this call: the row is left for a rerun."""


class _RowFailed(Exception):
    def __init__(self, reason: str, error: str, raw: str | None = None, tries: int = 1):
        self.reason = reason
        self.error = error
        self.raw = raw
        self.tries = tries
        super().__init__(error)


# Which Stats counter each kind of failed call adds to (other kinds are counted only as retries/failures).
_FAILURE_COUNTERS = {"http-429": "http_429", "http-5xx": "http_5xx", "timeout": "timeouts",
                     "connection": "connection_errors", "empty": "empty_replies", "bad-response": "bad_responses"}

class Engine:
    def __init__(self, config: LLMConfig, *, backends: list[Backend] | None = None):
        self.config = config
        self.stats = Stats()
        self.stopped: str | None = None
        self.last_estimate: Estimate | None = None
        self._estimate_printed = False
        self._api_key = config.api_key or os.environ.get("OPENAI_API_KEY") or ""
        self._prices = PriceTable(config.prices_path)
        self.price = self._prices.price(config.model)
        if config.max_cost is not None and not self.price.known:
            raise LLMError(f"--max-cost needs a price for model {config.model!r}: add it to a --prices file")
        self._backends = backends
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._cache: ResponseCache | None = None
        self._failed = None
        self._limiter: AdaptiveLimiter | None = None
        self._reserved = 0.0
        self._reached = False   # any HTTP answer at all (even a 429) proves the server is there
        self._halted = False    # a row was held back by the budget: yield nothing after it
        self._rng = random.Random(0)   # jitter only; never touches outputs
        self._lock = threading.Lock()
        self._started = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        if self._loop is not None:
            return
        cfg = self.config
        if cfg.cache_mode != "off" and cfg.cache_path is not None:
            self._cache = ResponseCache(cfg.cache_path)
        elif cfg.cache_mode == "only":
            raise LLMError("--cache-only needs a cache file (--cache PATH)")
        if cfg.failed_path is not None:
            cfg.failed_path.parent.mkdir(parents=True, exist_ok=True)
            # This run's failures only (failed rows are never cached, so a rerun retries them all): the
            # first engine of a process truncates the file, later ones in the same command append to it.
            name = str(cfg.failed_path.resolve())
            mode = "a" if name in _FAILED_FILES_OPENED else "w"
            _FAILED_FILES_OPENED.add(name)
            self._failed = open(cfg.failed_path, mode, encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._limiter = AdaptiveLimiter(cfg.concurrency, rpm=cfg.rpm, tpm=cfg.tpm)
        self.stats.concurrency_min = self.stats.concurrency_now = float(cfg.concurrency)
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=main, name="instructkit-llm", daemon=True)
        self._thread.start()
        ready.wait()
        if self._backends is None and cfg.cache_mode != "only":
            self._backends = self._call_in_loop(self._make_backends())

    async def _make_backends(self) -> list[Backend]:
        key = self._api_key or "sk-no-key"
        per_url = max(1, -(-self.config.concurrency // len(self.config.base_urls)))
        return [OpenAIBackend(url, key, timeout=self.config.timeout, concurrency=per_url)
                for url in self.config.base_urls]

    def _call_in_loop(self, coro) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self.last_estimate is not None and self.config.dry_run and not self._estimate_printed:
            self._estimate_printed = True
            print(self.last_estimate.summary(), file=sys.stderr, flush=True)
        if self._loop is not None:
            async def _close_all() -> None:
                # Rows abandoned by a caller that stopped iterating: end them before the sockets go.
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for backend in self._backends or []:
                    await backend.close()

            try:
                self._call_in_loop(_close_all())
            except Exception:  # noqa: BLE001 - closing sockets must not mask the run's outcome
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join(10)
            self._loop.close()
            self._loop = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        if self._failed is not None:
            self._failed.close()
            self._failed = None

    # -- public ----------------------------------------------------------------------------------

    def run(self, requests: Iterable[Request], parse: Parse | None = None,
            max_parse_retries: int = 2, desc: str | None = None) -> Iterator[Result]:
        """Yield one Result per request, in input order. Ends early (``self.stopped`` set) when the next
        call could push the spend past ``max_cost``; rows not yielded are resumable from the cache.
        ``desc`` labels the progress bar (a job that runs several batches names each stage)."""
        if self.config.dry_run:
            # Jobs call run() once per batch: the estimates add up and close() prints the total once.
            self.last_estimate = self.estimate(requests, into=self.last_estimate)
            self.stopped = "dry-run"
            return
        self._start()
        cfg = self.config
        window = cfg.reorder_window or max(256, 4 * cfg.concurrency)
        total = len(requests) if hasattr(requests, "__len__") else None
        bar = _progress(total, desc) if cfg.progress else None
        pending: deque[tuple[Request, Future]] = deque()
        try:
            for request in requests:
                if self.stopped:
                    break
                pending.append((request, self._submit(request, parse, max_parse_retries)))
                while pending and (len(pending) >= window or pending[0][1].done()):
                    result = self._settle(*pending.popleft())
                    if result is None:
                        break
                    self._tick(bar)
                    yield result
            # After a budget stop nothing more is yielded: output stays a prefix of the input order.
            while pending and not self._halted:
                result = self._settle(*pending.popleft())
                if result is None:
                    break
                self._tick(bar)
                yield result
        finally:
            # Calls already in flight finish (and land in the cache) so a rerun replays them for free.
            for _, future in pending:
                if self.stopped:
                    try:
                        future.result()
                    except BaseException:  # noqa: BLE001 - settling only
                        pass
                else:
                    future.cancel()
            if bar is not None:
                bar.close()

    def estimate(self, requests: Iterable[Request], into: Estimate | None = None) -> Estimate:
        """Count every request and price it without calling anything (``into``: add to that estimate)."""
        est = into or Estimate(tokenizer=tokenizer_name(self.config.model), priced=self.price.known,
                               model=self.config.model)
        for request in requests:
            est.missing_images += len(missing_images(request.messages))
            tokens = prompt_tokens(request, self.config.model)
            est.rows += 1
            est.requests += 1
            est.prompt_tokens += tokens
            est.max_completion_tokens += request.max_tokens * request.n
        est.prompt_cost = self.price.cost(est.prompt_tokens, 0)
        est.max_cost = self.price.cost(est.prompt_tokens, est.max_completion_tokens)
        return est

    def summary(self) -> str:
        s = self.stats
        elapsed = time.monotonic() - self._started
        rows = [
            ("rows", f"{s.rows} ({s.rows_ok} ok, {s.rows_failed} failed)"),
            ("failed by reason", ", ".join(f"{k} {v}" for k, v in sorted(s.failed_by_reason.items())) or "-"),
            ("requests sent", f"{s.requests} ({s.retries} retries)"),
            ("errors", f"429 {s.http_429}, 5xx {s.http_5xx}, timeout {s.timeouts}, connection "
                       f"{s.connection_errors}, empty {s.empty_replies}, bad reply {s.bad_responses}"),
            ("parse rejects", str(s.parse_rejects)),
            ("cache hits", str(s.cache_hits)),
            ("tokens", f"prompt {s.prompt_tokens} (cached {s.cached_tokens}), completion {s.completion_tokens}"),
            ("cost", f"${s.cost:.4f}" + ("" if self.price.known else f" (no price for {self.config.model})")),
            ("concurrency", f"ceiling {self.config.concurrency}, lowest {s.concurrency_min:.0f}, "
                            f"{s.limit_cuts} cuts"),
            ("elapsed", f"{elapsed:.1f}s"),
        ]
        if self.stopped:
            rows.append(("stopped", self.stopped))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

    # -- main-thread side ------------------------------------------------------------------------

    def _submit(self, request: Request, parse: Parse | None, max_parse_retries: int) -> Future:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(self._row(request, parse, max_parse_retries), self._loop)

    def _settle(self, request: Request, future: Future) -> Result | None:
        try:
            result: Result | None = future.result()
        except LLMError as exc:
            # A run-ending error may quote the server, and a server may quote the key it was sent.
            raise LLMError(self._redact(str(exc))) from None
        if result is None:          # stopped by the budget before this row's call
            self.stopped = self.stopped or "max-cost"
            self._halted = True
            return None
        self.stats.rows += 1
        if result.ok:
            self.stats.rows_ok += 1
        else:
            if result.reason in ("connection", "timeout") and not self._reached:
                # Every try of this row failed and no server has answered anything yet: a wrong URL or a
                # server that is down, which would fail every row the same way.
                raise LLMError(f"no answer from {', '.join(self.config.base_urls)} after "
                               f"{result.attempts} tries ({result.error}); is the server running?")
            self.stats.rows_failed += 1
            self.stats.failed_by_reason[result.reason or "error"] += 1
            self._write_failed(result)
        return result

    def _write_failed(self, result: Result) -> None:
        if self._failed is None:
            return
        row = {"key": result.request.key, "reason": result.reason, "error": self._redact(result.error),
               "attempts": result.attempts, "last_raw": self._redact(result.raw), "meta": result.request.meta}
        # One write per line on an append-mode handle: a kill leaves whole lines only.
        self._failed.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self._failed.flush()

    def _tick(self, bar) -> None:
        if bar is not None:
            bar.set_postfix_str(f"${self.stats.cost:.4f} c={self.stats.concurrency_now:.0f}", refresh=False)
            bar.update(1)

    def _redact(self, text: str | None) -> str | None:
        if text and self._api_key and self._api_key in text:
            return text.replace(self._api_key, "***")
        return text

    # -- loop-thread side ------------------------------------------------------------------------

    async def _row(self, request: Request, parse: Parse | None, max_parse_retries: int) -> Result | None:
        cfg = self.config
        attempts = 0
        last_raw: str | None = None
        reason = error = None
        try:
            view = key_view(request.messages)
        except RowError as exc:
            return Result(request, False, error=exc.detail, reason=exc.reason)
        for attempt in range(max_parse_retries + 1):
            key = cache_key(cfg.model, request, attempt, view)
            entry = self._cache.get(key) if self._cache is not None else None
            cached = entry is not None
            if cached:
                attempts += 1
                self.stats.cache_hits += 1
                completion = Completion(entry["texts"], entry.get("finish_reason"), entry.get("usage") or {})
            elif cfg.cache_mode == "only":
                return Result(request, False, error="not in the cache and --cache-only forbids calling",
                              reason="cache-miss", attempts=attempts, raw=last_raw)
            else:
                try:
                    completion, tries = await self._call(request, attempt)
                except _Stopped:
                    return None
                except _RowFailed as exc:
                    return Result(request, False, error=self._redact(exc.error), reason=exc.reason,
                                  attempts=attempts + exc.tries, raw=self._redact(exc.raw or last_raw))
                except RowError as exc:
                    return Result(request, False, error=exc.detail, reason=exc.reason, attempts=attempts)
                attempts += tries
                if self._cache is not None:
                    self._cache.put(key, cfg.model, completion.to_cache())
            last_raw = completion.texts[0]
            parsed = None
            if parse is not None:
                try:
                    if request.n == 1:
                        parsed = parse(completion.texts[0], completion.finish_reason or "")
                    else:
                        parsed = [parse(t, completion.finish_reason or "") for t in completion.texts]
                except ParseRejected as exc:
                    self.stats.parse_rejects += 1
                    reason, error = f"parse:{exc.reason}", f"reply rejected by the parser: {exc.reason}"
                    continue
            return Result(request, True, text=completion.texts[0], texts=completion.texts, parsed=parsed,
                          finish_reason=completion.finish_reason, usage=completion.usage, cached=cached,
                          attempts=attempts, raw=completion.texts[0])
        return Result(request, False, error=error, reason=reason, attempts=attempts, raw=last_raw)

    def _reserve(self, request: Request, tokens: int) -> float:
        """Worst-case cost of one call: prompt estimate with a 25% margin for tokenizer differences, and
        every completion token the call may produce."""
        if self.config.max_cost is None:
            return 0.0
        worst = self.price.cost(int(tokens * 1.25) + 16, request.max_tokens * request.n)
        with self._lock:
            if self.stopped or self.stats.cost + self._reserved + worst > self.config.max_cost:
                self.stopped = "max-cost"
                raise _Stopped()
            self._reserved += worst
        return worst

    async def _call(self, request: Request, attempt: int = 0) -> tuple[Completion, int]:
        cfg = self.config
        assert self._limiter is not None and self._backends
        tokens = prompt_tokens(request, cfg.model)
        payload = {"model": cfg.model, "messages": wire_messages(request.messages),
                   "temperature": request.temperature, "top_p": request.top_p, "max_tokens": request.max_tokens,
                   "n": request.n}
        for name in ("stop", "response_format"):
            value = getattr(request, name)
            if value is not None:
                payload[name] = value
        if request.seed is not None:
            payload["seed"] = wire_seed(request.seed, request.sample_index, attempt)
        reserved_tokens = tokens + request.max_tokens * request.n
        avoid: Backend | None = None
        failure: CallFailed | None = None
        for retry in range(cfg.max_retries + 1):
            if self.stopped:
                raise _Stopped()
            reserve = self._reserve(request, tokens)
            epoch = await self._limiter.acquire(reserved_tokens, front=retry > 0)
            backend = self._pick(avoid)
            self.stats.requests += 1
            if retry:
                self.stats.retries += 1
            try:
                completion = await backend.complete(payload)
            except CallFailed as exc:
                failure = exc
                self._reached = self._reached or exc.kind not in ("connection", "timeout")
                self._count_failure(exc)
                self._limiter.release(epoch, "429" if exc.kind == "http-429" else "error", headers=exc.headers,
                                      reserved_tokens=reserved_tokens, used_tokens=0)
                self._after_limit()
                if not exc.retryable:
                    raise _RowFailed(exc.kind, str(exc), exc.raw, retry + 1) from None
                avoid = backend if exc.kind in ("connection", "timeout", "http-5xx") else None
                if retry < cfg.max_retries:
                    await asyncio.sleep(self._backoff(retry, exc.retry_after))
                continue
            finally:
                if reserve:
                    with self._lock:
                        self._reserved -= reserve
            self._reached = True
            usage = completion.usage
            used = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
            self._limiter.release(epoch, "ok", headers=completion.headers, reserved_tokens=reserved_tokens,
                                  used_tokens=used)
            self._after_limit()
            spent = self.price.cost(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                                    usage.get("cached_tokens", 0))
            with self._lock:
                self.stats.cost += spent
                self.stats.prompt_tokens += usage.get("prompt_tokens", 0)
                self.stats.completion_tokens += usage.get("completion_tokens", 0)
                self.stats.cached_tokens += usage.get("cached_tokens", 0)
            return completion, retry + 1
        assert failure is not None
        raise _RowFailed(failure.kind, f"{failure} (gave up after {cfg.max_retries + 1} tries)", failure.raw,
                         cfg.max_retries + 1)

    def _pick(self, avoid: Backend | None) -> Backend:
        """Least outstanding calls first; after a connection-level failure, another server if there is one."""
        backends = self._backends or []
        choices = [b for b in backends if b is not avoid] or backends
        return min(choices, key=lambda b: b.inflight)

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.config.backoff_cap, retry_after) * self._rng.uniform(1.0, 1.5)
        base = min(self.config.backoff_cap, self.config.backoff_base * 2 ** retry)
        return base * self._rng.uniform(0.5, 1.0)

    def _count_failure(self, exc: CallFailed) -> None:
        field = _FAILURE_COUNTERS.get(exc.kind)
        if field is not None:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    def _after_limit(self) -> None:
        assert self._limiter is not None
        self.stats.concurrency_now = self._limiter.limit
        self.stats.concurrency_min = self._limiter.min_limit
        self.stats.limit_cuts = self._limiter.cuts

    @property
    def limiter(self) -> AdaptiveLimiter | None:
        return self._limiter


def wire_seed(seed: int, sample_index: int, attempt: int) -> int:
    """The seed sent for one call. A seeded server (vLLM, llama.cpp; OpenAI on a best-effort basis) answers
    one seed with one reply, so the k-th sample of a prompt and each ask-again after a parser rejection get a
    seed of their own, derived deterministically; the first call of the first sample sends ``seed`` as given."""
    if sample_index == 0 and attempt == 0:
        return seed
    digest = hashlib.blake2b(f"{seed}:{sample_index}:{attempt}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF     # 31 bits: every server's seed type holds it


def _progress(total: int | None, desc: str | None = None):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    # disable=None: a bar only on a terminal, so logs and CI output stay free of carriage returns.
    return tqdm(total=total, desc=desc, unit="row", file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                disable=None)
