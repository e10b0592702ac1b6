"""Box conventions: xyxy / xywh / cxcywh times pixels / 0-1 / 0-1000."""

import itertools

import pytest

from instructkit.errors import UsageError
from instructkit.self_instruct.geometry import (
    BOX_CLIPPED,
    BOX_EMPTY,
    BOX_MALFORMED,
    BOX_NEGATIVE,
    BOX_OUTSIDE,
    BoxFormat,
    clip_box,
    convert,
)

W, H = 400, 200
# One box, x from 40 to 120 and y from 20 to 180, written in every convention.
SAME = {
    "xyxy-px": (40, 20, 120, 180),
    "xywh-px": (40, 20, 80, 160),
    "cxcywh-px": (80, 100, 80, 160),
    "xyxy-norm": (0.1, 0.1, 0.3, 0.9),
    "xywh-norm": (0.1, 0.1, 0.2, 0.8),
    "cxcywh-norm": (0.2, 0.5, 0.2, 0.8),
    "xyxy-1000": (100, 100, 300, 900),
    "xywh-1000": (100, 100, 200, 800),
    "cxcywh-1000": (200, 500, 200, 800),
}


@pytest.mark.parametrize("src,dst", list(itertools.product(SAME, SAME)))
def test_every_pair_converts(src, dst):
    assert convert(SAME[src], src, dst, W, H) == pytest.approx(SAME[dst])


def test_parse_aliases():
    assert BoxFormat.parse("xywh") == BoxFormat("xywh", "px")
    assert BoxFormat.parse("XYXY_0-1") == BoxFormat("xyxy", "norm")
    assert BoxFormat.parse("cxcywh-0-1000") == BoxFormat("cxcywh", "1000")
    assert str(BoxFormat.parse("xyxy-pixels")) == "xyxy-px"
    with pytest.raises(UsageError, match="layout"):
        BoxFormat.parse("yxyx-px")
    with pytest.raises(UsageError, match="units"):
        BoxFormat.parse("xyxy-inches")


def test_clip_and_reject():
    assert clip_box([10, 10, 20, 20], "xywh-px", W, H) == ((10, 10, 30, 30), None)
    box, status = clip_box([380, 190, 50, 50], "xywh-px", W, H)
    assert status == BOX_CLIPPED and box == (380, 190, 400, 200)
    assert clip_box([-10, -10, 30, 30], "xyxy-px", W, H) == ((0, 0, 30, 30), BOX_CLIPPED)
    assert clip_box([10, 10, -5, 20], "xywh-px", W, H) == (None, BOX_NEGATIVE)
    assert clip_box([30, 10, 20, 20], "xyxy-px", W, H) == (None, BOX_NEGATIVE)
    assert clip_box([500, 10, 50, 50], "xywh-px", W, H) == (None, BOX_OUTSIDE)
    assert clip_box([10, 10, 0, 20], "xywh-px", W, H) == (None, BOX_EMPTY)
    assert clip_box([1, 2, 3], "xyxy-px", W, H) == (None, BOX_MALFORMED)
    assert clip_box(["a", 2, 3, 4], "xyxy-px", W, H) == (None, BOX_MALFORMED)
    assert clip_box([0.1, 0.1, 0.3, 0.9], "xyxy-norm", W, H) == (pytest.approx((40, 20, 120, 180)), None)
