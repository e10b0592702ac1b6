"""`instructkit filter` (library: ``quality.filters.filter_job``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import info, run


def register(app: typer.Typer) -> None:
    @app.command("filter", help="Drop bad rows: length bounds, refusals, leaks, missing/corrupt/small/"
                 "extreme-aspect images (header-only reads), exact duplicates (normalised text + image "
                 "content), near-duplicate instructions (ROUGE-L) and images (perceptual hash), optionally low "
                 "CLIP image-text similarity. Each drop is counted by reason and written to a rejects file; the "
                 "funnel (read -> dropped per filter -> kept) is printed and saved as JSON beside the output.")
    def filter_cmd(
        file: Annotated[Path, typer.Argument(help="Record file (any format; or HF datasets folder / parquet).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Where the kept rows go (format from the "
                                             "extension or --to).")],
        from_fmt: Annotated[str | None, typer.Option("--from", help="Force the input format.")] = None,
        to_fmt: Annotated[str | None, typer.Option("--to", help="Output format (default: from the output "
                                                   "name, else canonical).")] = None,
        image_root: Annotated[Path | None, typer.Option("--image-root", help="Folder that relative image "
                                                        "paths point into (default: the file's folder).")] = None,
        rejects: Annotated[Path | None, typer.Option("--rejects", help="Rejects file (default: OUT's name with "
                                                     ".rejects.jsonl).")] = None,
        funnel: Annotated[Path | None, typer.Option("--funnel", help="Funnel JSON (default: OUT's name with "
                                                    ".funnel.json).")] = None,
        min_instruction_words: Annotated[int, typer.Option("--min-instruction-words", min=0,
                                                           help="Fewest words over a row's user turns.")] = 0,
        max_instruction_words: Annotated[int | None, typer.Option("--max-instruction-words", min=0,
                                                                  help="Most words over a row's user turns.")] = None,
        min_response_words: Annotated[int, typer.Option("--min-response-words", min=0, help="Fewest words "
                                                        "over a row's assistant turns.")] = 1,
        max_response_words: Annotated[int | None, typer.Option("--max-response-words", min=0, help="Most "
                                                               "words over a row's assistant turns.")] = None,
        no_refusals: Annotated[bool, typer.Option("--no-refusals", help="Turn off the built-in refusal "
                                                  "patterns.")] = False,
        no_leaks: Annotated[bool, typer.Option("--no-leaks", help="Turn off the built-in leak patterns.")] = False,
        refusal_pattern: Annotated[list[str] | None, typer.Option("--refusal-pattern", help="Extra refusal "
                                                                   "regex (repeatable, case-insensitive).")] = None,
        leak_pattern: Annotated[list[str] | None, typer.Option("--leak-pattern", help="Extra leak regex "
                                                                "(repeatable, case-insensitive).")] = None,
        no_dedup: Annotated[bool, typer.Option("--no-dedup", help="Keep exact duplicates.")] = False,
        rouge_threshold: Annotated[float, typer.Option("--rouge-threshold", help="Drop an instruction whose "
                                                       "ROUGE-L F1 with a kept one is at least this; 0 turns "
                                                       "it off.")] = 0.7,
        no_image_checks: Annotated[bool, typer.Option("--no-image-checks", help="Do not open image files "
                                                      "(also turns off image near-duplicates).")] = False,
        min_side: Annotated[int, typer.Option("--min-side", min=0, help="Drop images whose shorter side is "
                                              "below this many pixels.")] = 32,
        max_aspect: Annotated[float, typer.Option("--max-aspect", help="Drop images whose long/short side "
                                                  "ratio is above this.")] = 5.0,
        phash_distance: Annotated[int, typer.Option("--phash-distance", help="Drop an image within this many "
                                                    "bits (of 64) of an earlier different image; -1 turns it "
                                                    "off.")] = 4,
        clip: Annotated[Path | None, typer.Option("--clip", help="Local CLIP model folder: drop rows whose "
                                                  "image-text similarity is below --clip-min.")] = None,
        clip_min: Annotated[float, typer.Option("--clip-min", help="Lowest CLIP cosine similarity kept.")] = 0.2,
        clip_batch: Annotated[int, typer.Option("--clip-batch", min=1, help="Image-text pairs per CLIP "
                                                "forward pass.")] = 64,
        clip_device: Annotated[str | None, typer.Option("--clip-device", help="torch device for CLIP "
                                                        "(default: cuda when there is one, else cpu).")] = None,
    ) -> None:
        from ..quality.filters import FilterConfig, filter_job, format_funnel

        config = FilterConfig(
            min_instruction_words=min_instruction_words, max_instruction_words=max_instruction_words,
            min_response_words=min_response_words, max_response_words=max_response_words,
            refusals=not no_refusals, leaks=not no_leaks, extra_refusal_patterns=list(refusal_pattern or []),
            extra_leak_patterns=list(leak_pattern or []), dedup=not no_dedup,
            rouge_threshold=rouge_threshold if rouge_threshold > 0 else None, check_images=not no_image_checks,
            min_side=min_side, max_aspect=max_aspect,
            phash_distance=phash_distance if phash_distance >= 0 else None,
            clip=str(clip) if clip is not None else None, clip_min=clip_min, clip_batch=clip_batch,
            clip_device=clip_device)
        result = run(filter_job, file, output, config=config, fmt=from_fmt, to=to_fmt, image_root=image_root,
                     rejects=rejects, funnel=funnel, progress=info)
        info(format_funnel(result))
