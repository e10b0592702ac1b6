"""The HTML report of `instructkit stats --html`: one self-contained file.

Everything is inline: CSS, charts as SVG, thumbnails as small base64 JPEG data URLs, so the file can be
mailed or attached to a pull request and opened offline. Every piece of text from the data is escaped.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from ..errors import RowError
from ..formats import atomic_write
from ..images import check_image, resolve
from ..records import Record, is_url

THUMB_SIDE = 160
MAX_TURN_CHARS = 700
MAX_MESSAGES = 8      # a 40-turn conversation would push the rest of the gallery off the page

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d1d1f;
background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #ddd}
.muted{color:#666;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:12px}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:8px 12px;min-width:120px}
.card b{display:block;font-size:18px}.card span{font-size:12px;color:#666}
.gallery{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:12px}
.sample{display:flex;gap:12px;background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:10px}
.thumbs{display:flex;flex-direction:column;gap:6px;flex:0 0 auto}
.thumb{width:auto;height:auto;max-width:160px;max-height:160px;border-radius:4px;display:block}
.noimg{width:160px;height:60px;background:#eee;color:#a00;font-size:12px;display:flex;align-items:center;
justify-content:center;text-align:center;border-radius:4px}
.conv{font-size:13px;min-width:0;flex:1}.turn{margin:0 0 6px;white-space:pre-wrap;overflow-wrap:anywhere}
.role{font-weight:600;color:#0a58ca}.role.assistant{color:#157347}.role.system{color:#6c757d}
.tag{display:inline-block;font-size:11px;background:#eef;border-radius:3px;padding:0 5px;margin-right:4px}
.charts{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:16px}
.chart{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:10px}
.chart h3{font-size:14px;margin:0 0 6px}
table{border-collapse:collapse;font-size:13px;background:#fff}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
"""


def write_report(result: Any, path: str | Path, *, title: str | None = None) -> Path:
    """Write the report for a ``stats.StatsResult`` to ``path`` (atomically)."""
    path = Path(path)
    text = render_report(result.data, result.samples, result.image_root, title=title)
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def render_report(data: dict, samples: list[Record], image_root: Path | None, *,
                  title: str | None = None) -> str:
    e = html.escape
    title = title or f"instructkit stats: {Path(data['file']).name}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<div class='muted'>{e(data['detected'])}</div>",
        _cards(data),
        "<h2>Sample gallery</h2>",
        f"<div class='muted'>{len(samples)} rows chosen by a seeded reservoir sample</div>",
        "<div class='gallery' id='gallery'>",
        *(_sample(rec, image_root, data["images"]["checked"]) for rec in samples),
        "</div>",
        "<h2>Distributions</h2>",
        _dist_table(data),
        "<h2>Charts</h2><div class='charts'>",
        _bars("Tasks", data["tasks"]),
        _bars("Sources", data["sources"]),
        _bars("Modality", data["modality"]),
        _bars("Templates", data["templates"]),
        _bars("Instruction words (per turn)", _hist(data["instruction_words"]["histogram"])),
        _bars("Response words (per turn)", _hist(data["response_words"]["histogram"])),
        _bars("Turns per row", data["turns_per_row"]["counts"]),
        _bars("Images per row", data["images"]["per_row"]["counts"]),
        _bars("Top verb + object pairs (heuristic)", data["verb_noun"]["top_pairs"]),
        _bars("Question openers", data["verb_noun"]["question_openers"]),
        _bars("Image width (px)", _hist(data["images"]["width"]["histogram"])),
        _bars("Image height (px)", _hist(data["images"]["height"]["histogram"])),
        "</div></body></html>\n",
    ]
    return "\n".join(parts)


def _cards(data: dict) -> str:
    d = data["diversity"]
    img = data["images"]

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    cards = [("rows", data["rows"]), ("image rows", data["modality"].get("image", 0)),
             ("text rows", data["modality"].get("text", 0)), ("unreadable rows", sum(data["unreadable"].values())),
             ("unique-instruction ratio", fmt(d["unique_instruction_ratio"])),
             ("distinct-1", fmt(d["distinct_1"])), ("distinct-2", fmt(d["distinct_2"])),
             ("distinct verb+object pairs", data["verb_noun"]["distinct_pairs"]),
             ("distinct images", img["distinct"]),
             ("bad images", sum(img["problems"].values()))]
    body = "".join(f"<div class='card'><b>{html.escape(str(v))}</b><span>{html.escape(k)}</span></div>"
                   for k, v in cards)
    return f"<div class='cards'>{body}</div>"


def _sample(rec: Record, image_root: Path | None, open_images: bool = True) -> str:
    e = html.escape
    if not rec.images:
        thumbs = "<div class='noimg' style='color:#666'>text only</div>"
    elif not open_images:
        thumbs = "".join(f"<div class='noimg' style='color:#666' title='{e(p)}'>not opened<br>{e(Path(p).name)}"
                         "</div>" for p in rec.images)
    else:
        thumbs = "".join(_thumb(p, image_root) for p in rec.images)
    turns = []
    for m in rec.messages[:MAX_MESSAGES]:
        text = m.content if len(m.content) <= MAX_TURN_CHARS else m.content[:MAX_TURN_CHARS] + "…"
        turns.append(f"<p class='turn'><span class='role {e(m.role)}'>{e(m.role)}:</span> {e(text)}</p>")
    if len(rec.messages) > MAX_MESSAGES:
        turns.append(f"<p class='turn muted'>… {len(rec.messages) - MAX_MESSAGES} more messages</p>")
    tags = "".join(f"<span class='tag'>{e(k)}: {e(v)}</span>"
                   for k, v in (("task", rec.task), ("source", rec.source)) if v)
    return (f"<div class='sample' data-id='{e(rec.id)}'><div class='thumbs'>{thumbs}</div>"
            f"<div class='conv'>{tags}{''.join(turns)}</div></div>")


def _thumb(path: str, image_root: Path | None) -> str:
    e = html.escape
    if is_url(path):
        return f"<div class='noimg' style='color:#666' title='{e(path)}'>URL, not fetched</div>"
    try:
        full = resolve(path, image_root)
        check_image(full)
        data = thumbnail_data_url(full)
    except RowError as exc:
        return f"<div class='noimg' title='{e(path)}'>{e(exc.reason)}<br>{e(Path(path).name)}</div>"
    except OSError as exc:  # a header that reads but pixels that do not decode
        return f"<div class='noimg' title='{e(path)}'>image-corrupt<br>{e(type(exc).__name__)}</div>"
    return f"<img class='thumb' alt='{e(path)}' title='{e(path)}' src='{data}'>"


def thumbnail_data_url(path: str | Path, side: int = THUMB_SIDE) -> str:
    """A JPEG thumbnail (long side ``side`` px) as a ``data:`` URL."""
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (side, side))
        im = im.convert("RGB")
        im.thumbnail((side, side), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _hist(bins: list[dict]) -> dict[str, int]:
    return {(str(b["lo"]) if b["lo"] == b["hi"] else f"{b['lo']}–{b['hi']}"): b["count"] for b in bins}


def _bars(title: str, counts: dict[str, int]) -> str:
    """A horizontal SVG bar chart; keeps the order it is given."""
    e = html.escape
    if not counts:
        return f"<div class='chart'><h3>{e(title)}</h3><div class='muted'>no data</div></div>"
    items = list(counts.items())
    label_w, bar_w, row_h = 190, 260, 20
    top = max(v for _, v in items) or 1
    height = row_h * len(items) + 4
    rows = []
    for i, (label, value) in enumerate(items):
        y = i * row_h + 2
        w = max(1, round(bar_w * value / top)) if value else 0
        short = label if len(label) <= 28 else label[:27] + "…"
        rows.append(
            f"<text x='{label_w - 6}' y='{y + 14}' text-anchor='end' font-size='12'>{e(short)}"
            f"<title>{e(label)}</title></text>"
            f"<rect x='{label_w}' y='{y + 3}' width='{w}' height='{row_h - 6}' fill='#4c78a8'></rect>"
            f"<text x='{label_w + w + 4}' y='{y + 14}' font-size='12' fill='#333'>{value}</text>")
    return (f"<div class='chart'><h3>{e(title)}</h3><svg xmlns='http://www.w3.org/2000/svg' "
            f"width='{label_w + bar_w + 60}' height='{height}' role='img'>{''.join(rows)}</svg></div>")


def _dist_table(data: dict) -> str:
    cols = ("n", "min", "mean", "p50", "p90", "p99", "max")
    rows = [("turns per row", data["turns_per_row"]), ("instruction words", data["instruction_words"]),
            ("response words", data["response_words"]), ("images per row", data["images"]["per_row"]),
            ("image width px", data["images"]["width"]), ("image height px", data["images"]["height"])]
    head = "<tr><th>distribution</th>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
    body = "".join("<tr><td>" + html.escape(name) + "</td>"
                   + "".join(f"<td>{'-' if s[c] is None else s[c]}</td>" for c in cols) + "</tr>"
                   for name, s in rows)
    return f"<table>{head}{body}</table>"
