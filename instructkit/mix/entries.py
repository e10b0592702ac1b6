"""An entry is one int64 that says where a validated row lives: byte offset, input number, two flags.

Every strategy shuffles, slices and counts arrays of entries instead of rows, so the mixer holds 8 bytes
per row (the index) and never the row text; rows are copied from the files only when the output is written.
"""

from __future__ import annotations

OFFSET_BITS = 48                      # 256 TiB per file
SOURCE_SHIFT = OFFSET_BITS
SOURCE_BITS = 10
MAX_SOURCES = 1 << SOURCE_BITS
IMAGE_BIT = 1 << (SOURCE_SHIFT + SOURCE_BITS)        # the row has images
SPOOL_BIT = 1 << (SOURCE_SHIFT + SOURCE_BITS + 1)    # the row lives in the spool file, not in its input
OFFSET_MASK = (1 << OFFSET_BITS) - 1
SOURCE_MASK = MAX_SOURCES - 1


def pack(offset: int, source: int, image: bool, spooled: bool) -> int:
    return offset | (source << SOURCE_SHIFT) | (IMAGE_BIT if image else 0) | (SPOOL_BIT if spooled else 0)


def sources_of(entries):
    """Input number of each entry (numpy array in, numpy array out)."""
    return (entries >> SOURCE_SHIFT) & SOURCE_MASK


def is_image(entries):
    return (entries & IMAGE_BIT) != 0


def count_by_source(entries, n_sources: int):
    import numpy as np

    if len(entries) == 0:
        return np.zeros(n_sources, dtype=np.int64)
    return np.bincount(sources_of(entries), minlength=n_sources)
