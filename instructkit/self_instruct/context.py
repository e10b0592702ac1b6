"""The text an LLM is shown instead of the image, as LLaVA builds it.

Caption lines, then (when boxes are asked for and there are any) a blank line and one
``label: [x1, y1, x2, y2]`` line per instance, normalised to 0–1 by the image's width and height, three
decimals, in annotation order, so that the model can count instances of a label.
"""

from __future__ import annotations

from .inputs import ImageContext


def box_line(label: str, xyxy: tuple[float, float, float, float], width: float, height: float) -> str:
    x1, y1, x2, y2 = xyxy
    return f"{label}: [{x1 / width:.3f}, {y1 / height:.3f}, {x2 / width:.3f}, {y2 / height:.3f}]"


def render_context(ctx: ImageContext, with_boxes: bool = True) -> str:
    lines = list(ctx.captions)
    if with_boxes and ctx.boxes:
        lines.append("")
        lines += [box_line(b.label, b.xyxy, ctx.width, ctx.height) for b in ctx.boxes]
    return "\n".join(lines)
