"""Image annotations in: COCO captions + instances, or generic JSONL rows, as ``ImageContext`` objects.

Pure functions over already-parsed JSON (the job opens the files). Problems are reported, never silently
repaired: an image without captions is a ``RowError`` (the job counts it and writes it to the rejects
file); a box that leaves the image is clipped, one with a negative or zero size, one fully outside and one
with an unknown category are dropped; each of those is counted in ``counts`` under its reason.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import RowError
from .geometry import BOX_CLIPPED, BoxFormat, clip_box

NO_CAPTIONS = "no-captions"
UNKNOWN_CATEGORY = "unknown-category"
BOX_UNKNOWN_IMAGE = "box-unknown-image"
BAD_SIZE = "bad-image-size"
BAD_ROW = "bad-row"
BOX_FORMAT_MISSING = "box-format-missing"


@dataclass
class Box:
    label: str
    xyxy: tuple[float, float, float, float]      # pixels, inside the image


@dataclass
class ImageContext:
    """What the LLM is told about one image."""

    image_id: str
    image: str                   # path relative to the image root, or a URL
    width: int
    height: int
    captions: list[str]
    boxes: list[Box] = field(default_factory=list)
    where: str = ""

    def counts(self) -> Counter:
        return Counter(b.label for b in self.boxes)


def _size(img: dict, where: str, file: str | None, line: int | None, row: int | None) -> tuple[int, int]:
    w, h = img.get("width"), img.get("height")
    if not isinstance(w, (int, float)) or not isinstance(h, (int, float)) or w <= 0 or h <= 0:
        raise RowError(BAD_SIZE, f"{where}: width and height must be positive numbers, got {w!r} x {h!r}",
                       file=file, line=line, row=row)
    return int(w), int(h)


def _add_box(boxes: list[Box], label: str, bbox: Any, fmt: BoxFormat, w: int, h: int, counts: Counter) -> None:
    xyxy, status = clip_box(bbox, fmt, w, h)
    if xyxy is None:
        counts[status] += 1
        return
    if status == BOX_CLIPPED:
        counts[BOX_CLIPPED] += 1
    boxes.append(Box(label, xyxy))


def coco_contexts(captions: dict, instances: dict | None, counts: Counter, *, captions_file: str = "captions",
                  instances_file: str = "instances") -> Iterator[ImageContext | RowError]:
    """One context per image of the captions file, in its order; an image without captions is yielded as a
    ``RowError`` so the caller can reject it with its location. Boxes are COCO's xywh pixels."""
    images = captions.get("images")
    if not isinstance(images, list):
        raise RowError(BAD_ROW, "not a COCO captions file: no 'images' list", file=captions_file)
    caps: dict[Any, list[str]] = defaultdict(list)
    for ann in captions.get("annotations") or []:
        text = str(ann.get("caption", "")).strip()
        if text:
            caps[ann.get("image_id")].append(text)
    boxes_by_image: dict[Any, list[tuple[str, Any]]] = defaultdict(list)
    if instances is not None:
        cats = {c.get("id"): c.get("name") for c in instances.get("categories") or []}
        known = {img.get("id") for img in images}
        for ann in instances.get("annotations") or []:
            if ann.get("image_id") not in known:
                counts[BOX_UNKNOWN_IMAGE] += 1
                continue
            name = cats.get(ann.get("category_id"))
            if not name:
                counts[UNKNOWN_CATEGORY] += 1
                continue
            boxes_by_image[ann["image_id"]].append((name, ann.get("bbox")))
    fmt = BoxFormat("xywh", "px")
    for k, img in enumerate(images):
        image_id = img.get("id")
        where = f"image id {image_id}"
        try:
            w, h = _size(img, where, captions_file, None, k)
        except RowError as exc:
            yield exc
            continue
        texts = caps.get(image_id) or []
        if not texts:
            yield RowError(NO_CAPTIONS, f"{where} has no captions", file=captions_file, row=k)
            continue
        boxes: list[Box] = []
        for name, bbox in boxes_by_image.get(image_id, ()):
            _add_box(boxes, name, bbox, fmt, w, h, counts)
        yield ImageContext(str(image_id), str(img.get("file_name") or f"{int(image_id):012d}.jpg"), w, h,
                           texts, boxes, where=f"{captions_file} row {k}")


def jsonl_contexts(rows: Iterable[tuple[int, Any]], counts: Counter, *, file: str = "input",
                   box_format: str | BoxFormat | None = None) -> Iterator[ImageContext | RowError]:
    """Generic rows: ``{"image", "width", "height", "captions": [...] (or "caption"), "boxes": [{"label",
    "bbox", "format"?}], "box_format"?, "id"?}``. A box's convention comes from its own ``format``, else the
    row's ``box_format``, else ``box_format`` given here; with none of them, the row is rejected rather than
    guessed (xyxy and xywh in pixels look alike)."""
    default = BoxFormat.parse(box_format) if box_format else None
    for line, row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("image"), str) or not row["image"]:
            yield RowError(BAD_ROW, "expected an object with an 'image' path", file=file, line=line)
            continue
        try:
            w, h = _size(row, f"image {row['image']}", file, line, None)
        except RowError as exc:
            yield exc
            continue
        caps = row.get("captions", row.get("caption", []))
        if isinstance(caps, str):
            caps = [caps]
        texts = [str(c).strip() for c in caps or [] if str(c).strip()]
        if not texts:
            yield RowError(NO_CAPTIONS, f"image {row['image']} has no captions", file=file, line=line)
            continue
        try:
            row_fmt = BoxFormat.parse(row["box_format"]) if row.get("box_format") else default
        except Exception as exc:  # noqa: BLE001 - a bad spec in one row rejects that row
            yield RowError(BAD_ROW, str(exc), file=file, line=line)
            continue
        boxes: list[Box] = []
        error = None
        for b in row.get("boxes") or []:
            if not isinstance(b, dict) or not b.get("label"):
                error = RowError(BAD_ROW, f"box {b!r} needs a 'label' and a 'bbox'", file=file, line=line)
                break
            try:
                fmt = BoxFormat.parse(b["format"]) if b.get("format") else row_fmt
            except Exception as exc:  # noqa: BLE001
                error = RowError(BAD_ROW, str(exc), file=file, line=line)
                break
            if fmt is None:
                error = RowError(BOX_FORMAT_MISSING, "boxes without a convention: give 'box_format' in the row "
                                 "or --box-format (e.g. xyxy-px, xywh-px, xyxy-norm, cxcywh-1000)",
                                 file=file, line=line)
                break
            _add_box(boxes, str(b["label"]), b.get("bbox"), fmt, w, h, counts)
        if error is not None:
            yield error
            continue
        yield ImageContext(str(row.get("id", row["image"])), row["image"], w, h, texts, boxes,
                           where=f"{file}:{line}")
