"""Image files: safe path resolution under an image root and header-only checks.

``Image.open`` reads only the header until ``.load()``, so checking size and format costs a few
kilobytes of I/O, not a decode (data-juicer decodes whole images just to read a size). A file cut short
keeps a valid header, so we also look at the last bytes for the format's end marker (JPEG EOI, PNG IEND,
GIF trailer), which catches truncation without decoding either.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import RowError
from .records import IMAGE_CORRUPT, IMAGE_ESCAPES_ROOT, IMAGE_MISSING, is_url

_TAILS = {"JPEG": (b"\xff\xd9",), "PNG": (b"IEND\xaeB`\x82",), "GIF": (b";",)}


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    width: int
    height: int
    format: str
    bytes: int


def resolve(path: str, root: str | Path | None) -> Path:
    """The file for a record's image path; a relative path may not climb out of ``root``."""
    if is_url(path):
        raise RowError(IMAGE_MISSING, f"image {path!r} is a URL, not a local file")
    p = Path(path)
    if p.is_absolute() or root is None:
        return p
    base = Path(root).resolve()
    full = (base / p).resolve()
    if full != base and base not in full.parents:
        raise RowError(IMAGE_ESCAPES_ROOT, f"image path {path!r} climbs out of the image root {root}")
    return full


def check_image(path: str | Path, *, check_tail: bool = True) -> ImageInfo:
    """Read only the header (and the last bytes); raise ``RowError`` when missing, undecodable or cut short."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        size = os.stat(p).st_size
    except FileNotFoundError:
        raise RowError(IMAGE_MISSING, f"image file {str(p)!r} does not exist") from None
    except NotADirectoryError:
        raise RowError(IMAGE_MISSING, f"image file {str(p)!r} does not exist") from None
    try:
        with Image.open(p) as im:
            width, height = im.size
            fmt = im.format or "?"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RowError(IMAGE_CORRUPT, f"image file {str(p)!r} cannot be read: {exc}") from None
    if check_tail and fmt in _TAILS:
        with open(p, "rb") as fh:
            fh.seek(max(0, size - 64))
            tail = fh.read().rstrip(b"\x00\r\n ")
        if not any(tail.endswith(t) for t in _TAILS[fmt]):
            raise RowError(IMAGE_CORRUPT, f"image file {str(p)!r} is truncated (no {fmt} end marker)")
    if width <= 0 or height <= 0:
        raise RowError(IMAGE_CORRUPT, f"image file {str(p)!r} has size {width}x{height}")
    return ImageInfo(p, width, height, fmt, size)
