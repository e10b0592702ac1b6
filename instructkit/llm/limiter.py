"""Admission control for requests: a concurrency window that adapts to 429s (AIMD), optional requests- and
tokens-per-minute budgets, and pauses asked for by rate-limit headers.

Why the 429 rate is smoothed before cutting: a provider that rejects a random few percent of calls is not
saying "slow down", and halving on each of them would collapse throughput (classic AIMD at 10% loss sits at
a window of ~4). A server at capacity rejects most of the excess, so the smoothed 429 share crosses the
threshold within a handful of replies; then the window halves, at most once per round trip (only replies to
calls sent after the last cut may cut again), and grows back by a tenth of the ceiling per round trip.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: str | None) -> float | None:
    """OpenAI's reset headers look like ``1s``, ``6m0s``, ``20ms``; plain numbers are seconds."""
    if not value:
        return None
    total, matched = 0.0, False
    for number, unit in _DURATION.findall(value.strip()):
        total += float(number) * _UNIT[unit or None]
        matched = True
    return total if matched else None


def retry_after(headers) -> float | None:
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return float(value)
        except ValueError:
            return None
    return None


class TokenBucket:
    """``rate_per_min`` units per minute with one second's worth of burst (at least one unit)."""

    def __init__(self, rate_per_min: float):
        self.rate = rate_per_min / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self, amount: float, now: float) -> float:
        self._refill(now)
        # A request bigger than the burst goes once the bucket is full, then drives it negative.
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        self.level -= amount

    def refund(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class AdaptiveLimiter:
    def __init__(self, ceiling: int, *, rpm: float | None = None, tpm: float | None = None,
                 threshold: float = 0.3, smoothing: float = 0.02):
        self.ceiling = float(ceiling)
        self.limit = float(ceiling)
        self.inflight = 0
        self.threshold = threshold
        self.smoothing = smoothing
        self.share_429 = 0.0
        self.epoch = 0
        self.cuts = 0
        self.min_limit = float(ceiling)
        self.pause_until = 0.0
        self.rpm = TokenBucket(rpm) if rpm else None
        self.tpm = TokenBucket(tpm) if tpm else None
        self.history: list[tuple[float, float]] = []   # (time, limit) at each change, for tests and plots
        self._waiters: deque[asyncio.Future] = deque()

    async def acquire(self, tokens: int, *, front: bool = False) -> int:
        """Wait for a slot and the budgets; returns the epoch to hand back to ``release``. ``front`` puts
        a retry ahead of first tries: its row holds back the ordered output."""
        if self.inflight < int(self.limit) and not self._waiters:
            self.inflight += 1
        else:
            # FIFO hand-over: ``_wake`` counts the slot for the waiter before waking it, so a woken call
            # never has to queue again behind later ones (which would stall ordered output behind it).
            waiter = asyncio.get_running_loop().create_future()
            if front:
                self._waiters.appendleft(waiter)
            else:
                self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self.inflight -= 1
                    self._wake()
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        try:
            while True:
                now = time.monotonic()
                wait = self.pause_until - now
                if self.rpm is not None:
                    wait = max(wait, self.rpm.wait_time(1, now))
                if self.tpm is not None:
                    wait = max(wait, self.tpm.wait_time(tokens, now))
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.rpm is not None:
                self.rpm.take(1)
            if self.tpm is not None:
                self.tpm.take(tokens)
        except BaseException:
            self.inflight -= 1
            self._wake()
            raise
        return self.epoch

    def release(self, epoch: int, outcome: str, *, reserved_tokens: int = 0, used_tokens: int | None = None,
                headers=None) -> None:
        """``outcome``: "ok", "429" or "error" (other failures do not steer the window)."""
        self.inflight -= 1
        if self.tpm is not None and used_tokens is not None and used_tokens < reserved_tokens:
            self.tpm.refund(reserved_tokens - used_tokens)
        if outcome == "ok":
            self.share_429 -= self.share_429 * self.smoothing
            if self.limit < self.ceiling:
                step = min(1.0, max(1.0, self.ceiling / 10) / self.limit)
                self._set(min(self.ceiling, self.limit + step))
        elif outcome == "429":
            self.share_429 += (1.0 - self.share_429) * self.smoothing
            if epoch >= self.epoch and self.share_429 > self.threshold:
                self.epoch += 1
                self.cuts += 1
                self._set(max(1.0, self.limit / 2))
        self._read_headers(headers)
        self._wake()

    def _set(self, limit: float) -> None:
        self.limit = limit
        self.min_limit = min(self.min_limit, limit)
        self.history.append((time.monotonic(), limit))
        if len(self.history) > 100_000:
            del self.history[:50_000]

    def _read_headers(self, headers) -> None:
        """A server that says its quota is spent until a reset time gets no new calls until then."""
        if headers is None:
            return
        for kind in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            if remaining is None:
                continue
            try:
                left = float(remaining)
            except ValueError:
                continue
            if left <= 0:
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}")) or 1.0
                self.pause_until = max(self.pause_until, time.monotonic() + min(reset, 60.0))

    def _wake(self) -> None:
        while self._waiters and self.inflight < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.inflight += 1
                waiter.set_result(None)
