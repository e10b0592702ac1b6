"""`instructkit stats` (library: ``quality.stats.stats_job``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._common import echo, info, run


def register(app: typer.Typer) -> None:
    @app.command("stats", help="Measure a record file: rows per task, source and modality; turns; instruction "
                 "and response lengths in words; distinct-1/-2 and the unique-instruction ratio; template usage; "
                 "verb-object pairs of instructions (heuristic); images per row and image sizes (headers only). "
                 "Prints tables, or JSON with --json; --html writes a self-contained report with charts and a "
                 "gallery of sample rows.")
    def stats_cmd(
        file: Annotated[Path, typer.Argument(help="Record file (any format; or HF datasets folder / parquet).")],
        from_fmt: Annotated[str | None, typer.Option("--from", help="Force the format: canonical, llava, "
                                                     "sharegpt, openai, alpaca or hf.")] = None,
        image_root: Annotated[Path | None, typer.Option("--image-root", help="Folder that relative image "
                                                        "paths point into (default: the file's folder).")] = None,
        no_images: Annotated[bool, typer.Option("--no-images", help="Do not open image files (no sizes, no "
                                                "thumbnails).")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON on stdout.")] = False,
        html: Annotated[Path | None, typer.Option("--html", help="Also write this self-contained HTML "
                                                  "report.")] = None,
        top: Annotated[int, typer.Option("--top", min=1, help="How many templates, verbs and pairs to "
                                         "list.")] = 20,
        sample: Annotated[int, typer.Option("--sample", min=0, help="Image rows in the report's gallery "
                                            "(plus a quarter as many text rows).")] = 12,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the gallery's sample.")] = 0,
        title: Annotated[str | None, typer.Option("--title", help="Title of the HTML report.")] = None,
    ) -> None:
        from ..quality.stats import format_stats, stats_job

        data = run(stats_job, file, fmt=from_fmt, image_root=image_root, check_images=not no_images, top=top,
                   sample=sample, seed=seed, html=html, title=title)
        echo(json.dumps(data, indent=2, ensure_ascii=False) if as_json else format_stats(data))
        if html is not None:
            info(f"wrote {html}")
