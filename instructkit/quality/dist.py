"""An exact distribution of integers kept as a Counter: memory grows with the number of distinct values
(lengths, pixel sizes), not with the number of rows."""

from __future__ import annotations

import math
from collections import Counter


class IntDist:
    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

    def add(self, value: int) -> None:
        self.counts[value] += 1

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def percentile(self, p: float) -> int | None:
        """Nearest rank: the smallest value with at least ceil(p/100 · n) values at or below it."""
        n = self.n
        if n == 0:
            return None
        rank = max(1, math.ceil(p / 100 * n))
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= rank:
                return value
        return max(self.counts)

    def summary(self) -> dict:
        n = self.n
        if n == 0:
            return {"n": 0, "min": None, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
        total = sum(v * c for v, c in self.counts.items())
        return {"n": n, "min": min(self.counts), "mean": round(total / n, 3), "p50": self.percentile(50),
                "p90": self.percentile(90), "p99": self.percentile(99), "max": max(self.counts)}

    def histogram(self, bins: int = 12) -> list[dict]:
        """Equal-width bins over [min, max] as ``{"lo", "hi", "count"}`` (hi inclusive)."""
        if not self.counts:
            return []
        lo, hi = min(self.counts), max(self.counts)
        width = max(1, math.ceil((hi - lo + 1) / bins))
        out = []
        for start in range(lo, hi + 1, width):
            end = start + width - 1
            out.append({"lo": start, "hi": end,
                        "count": sum(c for v, c in self.counts.items() if start <= v <= end)})
        return out
