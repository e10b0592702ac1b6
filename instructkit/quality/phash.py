"""Perceptual hashes (pHash, dHash) and a near-duplicate index over them.

pHash: grey 32×32 → 2-D DCT → the 8×8 lowest frequencies → one bit per coefficient, set when above the
median of the 63 non-DC ones (the DC term is the mean brightness, not structure). dHash: grey 9×8 → one bit
per horizontal neighbour pair, set when the left pixel is brighter. Both give 64-bit ints; similar images
differ in a few bits (Hamming distance).

JPEGs are decoded with ``draft`` at reduced scale (1/2 … 1/8 in the DCT domain), so hashing a photo costs a
fraction of a full decode.

``HashIndex`` finds a stored hash within Hamming distance ``k`` without comparing against all of them
(multi-index hashing): split the 64 bits into k+1 bands; two hashes within distance k agree exactly on at
least one band (pigeonhole), so only hashes sharing a band value are compared.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

HASH_BITS = 64


def _grey(path: str | Path | Any, size: tuple[int, int]) -> Any:
    from PIL import Image

    im = path if isinstance(path, Image.Image) else Image.open(path)
    try:
        if im.format == "JPEG":
            im.draft("L", (size[0] * 2, size[1] * 2))
        return im.convert("L").resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    finally:
        if im is not path:
            im.close()


@lru_cache(maxsize=1)
def _dct_matrix(n: int = 32) -> Any:
    import numpy as np

    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0, :] = np.sqrt(1.0 / n)
    return m


def phash(image: str | Path | Any) -> int:
    """64-bit DCT perceptual hash of an image file (or an open PIL image)."""
    import numpy as np

    pixels = np.asarray(_grey(image, (32, 32)), dtype=np.float64)
    d = _dct_matrix(32)
    low = (d @ pixels @ d.T)[:8, :8].flatten()
    median = np.median(low[1:])
    bits = low > median
    bits[0] = False
    return _pack(bits.tolist())


def dhash(image: str | Path | Any) -> int:
    """64-bit difference hash: is each pixel brighter than its right neighbour (9×8 grey)."""
    px = _grey(image, (9, 8)).tobytes()  # mode L: one byte per pixel, row-major
    return _pack([px[r * 9 + c] > px[r * 9 + c + 1] for r in range(8) for c in range(8)])


def _pack(bits: list[bool]) -> int:
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return value


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class HashIndex:
    """Near-duplicate lookups for 64-bit hashes within Hamming distance ``max_distance``."""

    def __init__(self, max_distance: int = 6):
        if not 0 <= max_distance < HASH_BITS:
            raise ValueError(f"max_distance must be in 0..{HASH_BITS - 1}")
        self.max_distance = max_distance
        bands = max_distance + 1
        width = HASH_BITS // bands
        self._bands = [(i * width, HASH_BITS if i == bands - 1 else (i + 1) * width) for i in range(bands)]
        self._tables: list[dict[int, list[int]]] = [{} for _ in self._bands]
        self._keys: list[Any] = []
        self._hashes: list[int] = []

    def __len__(self) -> int:
        return len(self._hashes)

    def _parts(self, h: int) -> list[int]:
        return [(h >> lo) & ((1 << (hi - lo)) - 1) for lo, hi in self._bands]

    def nearest(self, h: int) -> tuple[Any, int] | None:
        """(key, distance) of the closest stored hash within the distance, or None."""
        best: tuple[Any, int] | None = None
        seen: set[int] = set()
        for table, part in zip(self._tables, self._parts(h)):
            for idx in table.get(part, ()):
                if idx in seen:
                    continue
                seen.add(idx)
                dist = (self._hashes[idx] ^ h).bit_count()
                if dist <= self.max_distance and (best is None or dist < best[1]):
                    best = (self._keys[idx], dist)
        return best

    def add(self, h: int, key: Any = None) -> None:
        idx = len(self._hashes)
        self._hashes.append(h)
        self._keys.append(key)
        for table, part in zip(self._tables, self._parts(h)):
            table.setdefault(part, []).append(idx)
