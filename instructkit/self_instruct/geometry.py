"""Bounding-box conventions: layout (xyxy / xywh / cxcywh) times units (pixels / 0–1 / 0–1000).

Users' most common confusion is which of these their boxes are in. A ``BoxFormat`` names both halves, e.g.
``"xywh-px"`` (COCO), ``"xyxy-norm"`` (LLaVA's context), ``"xyxy-1000"`` (Qwen-VL, Kosmos-2 style),
``"cxcywh-norm"`` (YOLO). Conversion goes through xyxy in pixels, so any pair converts.

``clip_box`` decides what to do with a box that leaves the image: a box partly outside is clipped to the
image (counted as clipped), a box with no area left, or with a negative size, is rejected with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError

LAYOUTS = ("xyxy", "xywh", "cxcywh")
UNITS = {"px": "px", "pixels": "px", "pixel": "px", "abs": "px",
         "norm": "norm", "0-1": "norm", "01": "norm", "normalized": "norm", "normalised": "norm", "rel": "norm",
         "1000": "1000", "0-1000": "1000", "k": "1000"}
_SCALE = {"norm": 1.0, "1000": 1000.0}

# Reasons a box is clipped or rejected (counted in the funnel).
BOX_CLIPPED = "box-clipped"
BOX_OUTSIDE = "box-outside-image"
BOX_NEGATIVE = "box-negative-size"
BOX_MALFORMED = "box-malformed"
BOX_EMPTY = "box-zero-size"


@dataclass(frozen=True)
class BoxFormat:
    layout: str = "xyxy"
    units: str = "px"

    @classmethod
    def parse(cls, spec: str | BoxFormat) -> BoxFormat:
        """``"xywh"`` (pixels), ``"xywh-px"``, ``"xyxy-norm"``, ``"xyxy-0-1"``, ``"cxcywh-1000"`` …"""
        if isinstance(spec, BoxFormat):
            return spec
        text = spec.strip().lower().replace("_", "-").replace("/", "-")
        layout, _, units = text.partition("-")
        if layout not in LAYOUTS:
            raise UsageError(f"box format {spec!r}: layout must be one of {', '.join(LAYOUTS)} "
                             f"(then -px, -norm or -1000)")
        units = units or "px"
        if units not in UNITS:
            raise UsageError(f"box format {spec!r}: units must be px (pixels), norm (0–1) or 1000 (0–1000)")
        return cls(layout, UNITS[units])

    def __str__(self) -> str:
        return f"{self.layout}-{self.units}"


def _check(box, what: str) -> tuple[float, float, float, float]:
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise ValueError(f"{what} must be 4 numbers, got {box!r}")
    try:
        vals = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be 4 numbers, got {box!r}") from None
    if any(v != v or v in (float("inf"), float("-inf")) for v in vals):
        raise ValueError(f"{what} has a NaN or infinite value: {box!r}")
    return vals  # type: ignore[return-value]


def to_xyxy_px(box, fmt: str | BoxFormat, width: float, height: float) -> tuple[float, float, float, float]:
    """Any convention to xyxy in pixels (no clipping, no validation of the size)."""
    f = BoxFormat.parse(fmt)
    a, b, c, d = _check(box, "box")
    if f.units != "px":
        s = _SCALE[f.units]
        a, b, c, d = a / s * width, b / s * height, c / s * width, d / s * height
    if f.layout == "xywh":
        return a, b, a + c, b + d
    if f.layout == "cxcywh":
        return a - c / 2, b - d / 2, a + c / 2, b + d / 2
    return a, b, c, d


def from_xyxy_px(box, fmt: str | BoxFormat, width: float, height: float) -> tuple[float, float, float, float]:
    """xyxy pixels to any convention."""
    f = BoxFormat.parse(fmt)
    x1, y1, x2, y2 = _check(box, "box")
    if f.layout == "xywh":
        a, b, c, d = x1, y1, x2 - x1, y2 - y1
    elif f.layout == "cxcywh":
        a, b, c, d = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    else:
        a, b, c, d = x1, y1, x2, y2
    if f.units != "px":
        s = _SCALE[f.units]
        a, b, c, d = a / width * s, b / height * s, c / width * s, d / height * s
    return a, b, c, d


def convert(box, src: str | BoxFormat, dst: str | BoxFormat, width: float, height: float
            ) -> tuple[float, float, float, float]:
    """Convert ``box`` from ``src`` to ``dst`` for an image of ``width`` × ``height`` pixels."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return from_xyxy_px(to_xyxy_px(box, src, width, height), dst, width, height)


def clip_box(box, fmt: str | BoxFormat, width: float, height: float
             ) -> tuple[tuple[float, float, float, float] | None, str | None]:
    """Box as xyxy pixels inside the image, and what happened: ``(box, None)`` untouched,
    ``(box, "box-clipped")`` clipped, ``(None, reason)`` rejected (negative size, zero size, nothing left inside,
    malformed)."""
    if width <= 0 or height <= 0:
        return None, BOX_MALFORMED
    f = BoxFormat.parse(fmt)
    try:
        vals = _check(box, "box")
    except ValueError:
        return None, BOX_MALFORMED
    if f.layout != "xyxy" and (vals[2] < 0 or vals[3] < 0):
        return None, BOX_NEGATIVE
    x1, y1, x2, y2 = to_xyxy_px(vals, f, width, height)
    if x2 < x1 or y2 < y1:
        return None, BOX_NEGATIVE
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    if cx2 - cx1 <= 0 or cy2 - cy1 <= 0:
        return None, BOX_OUTSIDE if (x2 > x1 and y2 > y1) else BOX_EMPTY
    clipped = (cx1, cy1, cx2, cy2)
    return clipped, (BOX_CLIPPED if clipped != (x1, y1, x2, y2) else None)
