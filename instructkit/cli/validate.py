"""`instructkit validate`: check a record file before training (library: ``quality.validate.validate_file``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._common import echo, run


def register(app: typer.Typer) -> None:
    @app.command("validate", help="Check a record file: schema rules (JSON, UTF-8, required fields, types, "
                 "roles, one <image> per image), image paths inside the image root, image files present and "
                 "readable (header and end marker, no full decode). Prints counts per reason and the first "
                 "offending rows with file:line; exits 1 when anything is wrong.")
    def validate_cmd(
        file: Annotated[Path, typer.Argument(help="Record file (or HF datasets folder / parquet file).")],
        image_root: Annotated[Path | None, typer.Option("--image-root", help="Folder that relative image "
                                                        "paths point into (default: the file's folder).")] = None,
        from_fmt: Annotated[str | None, typer.Option("--from", help="Force the format: canonical, llava, "
                                                     "sharegpt, openai, alpaca or hf.")] = None,
        max_show: Annotated[int, typer.Option("--max-show", min=0, help="How many offending rows to list.")] = 20,
        no_images: Annotated[bool, typer.Option("--no-images", help="Skip the image file checks.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    ) -> None:
        from ..quality.validate import validate_file

        report = run(validate_file, file, fmt=from_fmt, image_root=image_root, check_images=not no_images,
                     max_show=max_show)
        echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if as_json else report.render())
        if not report.ok:
            raise typer.Exit(1)
