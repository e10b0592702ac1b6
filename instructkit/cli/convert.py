"""`instructkit convert`: one record file to another format (library: ``formats.convert.convert_file``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import info, run

FORMAT_HELP = "canonical, llava, sharegpt, openai, alpaca or hf"


def register(app: typer.Typer) -> None:
    @app.command("convert", help="Convert a record file between formats (canonical JSONL, LLaVA, ShareGPT / "
                 "LLaMA-Factory, OpenAI chat, Alpaca, HF datasets folder or parquet). The input format is "
                 "sniffed unless --from is given; the output format follows --to or the output name "
                 "(.jsonl = canonical, .json = llava, .parquet or a folder = hf). A row the target format "
                 "cannot hold is an error naming the row (or a rejects-file row with --on-error skip).")
    def convert_cmd(
        src: Annotated[Path, typer.Argument(help="Input file (or HF datasets folder / parquet file).")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Output file or folder (written atomically).")],
        from_fmt: Annotated[str | None, typer.Option("--from", help=f"Force the input format: {FORMAT_HELP}.")] = None,
        to_fmt: Annotated[str | None, typer.Option("--to", help=f"Output format: {FORMAT_HELP} "
                                                   "(default: from the output name).")] = None,
        image_root: Annotated[Path | None, typer.Option("--image-root", help="Folder that relative image paths "
                                                        "point into (default: the input's folder); used to "
                                                        "embed images in HF output.")] = None,
        lean: Annotated[bool, typer.Option("--lean", help="Drop instructkit's own keys (source, task, meta) "
                                           "from foreign formats; the round trip then loses them.")] = False,
        on_error: Annotated[str, typer.Option("--on-error", help="fail: stop at the first bad row, output "
                                              "untouched; skip: write bad rows to the rejects file.")] = "fail",
        rejects: Annotated[Path | None, typer.Option("--rejects", help="Rejects file for --on-error skip "
                                                     "(default: OUTPUT.rejects.jsonl).")] = None,
    ) -> None:
        from ..formats.convert import convert_file

        run(convert_file, src, output, from_fmt=from_fmt, to_fmt=to_fmt, image_root=image_root, lean=lean,
            on_error=on_error, rejects=rejects, log=info)
