"""`instructkit mix`: combine language-only and multimodal sets (library: ``mix.run_mix``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import info, run

HELP = (
    "Mix record files (any reader format, auto-detected) into one canonical set: concat, shuffle (in memory "
    "or external with --shuffle-memory), sequential stages (text first, then image), weighted interleave "
    "(first-exhausted | all-exhausted | without-replacement), modality-grouped or fixed-ratio batches. "
    "Each input is PATH[:w=0.3,cap=1000,mult=2,name=text,fmt=llava]. Writes OUTPUT and a manifest beside "
    "it (inputs with sha256, strategy, seed, per-input counts, rows dropped and repeated) and prints it as "
    "a table."
)


def register(app: typer.Typer) -> None:
    @app.command("mix", help=HELP)
    def mix_cmd(
        inputs: Annotated[list[str] | None, typer.Argument(
            help="Inputs: PATH[:w=W,cap=N,mult=M,name=NAME,fmt=FORMAT].", show_default=False)] = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file (.jsonl = canonical, "
                                                    ".json = llava, .parquet or folder = hf); written "
                                                    "atomically. Required unless the recipe names one.")] = None,
        recipe: Annotated[Path | None, typer.Option("--recipe", help="YAML recipe with 'inputs' and any "
                                                    "option below by name (command-line options win).")] = None,
        strategy: Annotated[str | None, typer.Option("--strategy", help="concat | shuffle | sequential | "
                                                     "interleave (default shuffle; interleave when weights "
                                                     "or --temperature are given).")] = None,
        stopping: Annotated[str | None, typer.Option("--stopping", help="interleave: first-exhausted | "
                                                     "all-exhausted | without-replacement (default).")] = None,
        temperature: Annotated[float | None, typer.Option("--temperature", help="Weights from sizes: p ∝ "
                                                          "min(n, K)^(1/T); T=2 is InstructBLIP's √n.")] = None,
        temperature_cap: Annotated[float | None, typer.Option("--temperature-cap", help="K in the "
                                                              "temperature formula (default: no cap).")] = None,
        weigh_by: Annotated[str | None, typer.Option("--weigh-by", help="Size for --temperature: examples "
                                                     "(rows) or tokens (whitespace words).")] = None,
        batches: Annotated[str | None, typer.Option("--batches", help="modality: every block of "
                                                    "--batch-size rows is one modality (LLaVA); ratio: every "
                                                    "block has round(f·B) image rows (LaVIN-like).")] = None,
        batch_size: Annotated[int | None, typer.Option("--batch-size", help="Block size B for "
                                                       "--batches.")] = None,
        image_fraction: Annotated[float | None, typer.Option("--image-fraction", help="Share f of image "
                                                             "rows in each block for --batches ratio.")] = None,
        allow_repeat: Annotated[bool | None, typer.Option("--allow-repeat", help="Let --batches ratio "
                                                          "repeat rows when the data are too few.")] = None,
        size: Annotated[int | None, typer.Option("--size", help="Exactly N output rows: down-sample (random "
                                                 "subset) or up-sample (repeat) each input by its weight "
                                                 "(default: by its size).")] = None,
        stages: Annotated[str | None, typer.Option("--stages", help="sequential: text,image (default), "
                                                   "image,text, inputs, or input names in order.")] = None,
        dedup: Annotated[bool | None, typer.Option("--dedup", help="Drop exact duplicates across inputs "
                                                   "(normalised text + image paths); first one "
                                                   "kept.")] = None,
        shuffle_memory: Annotated[int | None, typer.Option("--shuffle-memory", help="shuffle: external "
                                                           "shuffle holding about this many MB of rows "
                                                           "at once.")] = None,
        to_fmt: Annotated[str | None, typer.Option("--to", help="Output format (default: from the output "
                                                   "name).")] = None,
        seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default 0).")] = None,
        manifest: Annotated[Path | None, typer.Option("--manifest", help="Manifest path (default: "
                                                      "OUTPUT-stem.manifest.json beside the output).")] = None,
        on_error: Annotated[str | None, typer.Option("--on-error", help="fail: stop at the first bad row; "
                                                     "skip: write bad rows to the rejects file.")] = None,
        rejects: Annotated[Path | None, typer.Option("--rejects", help="Rejects file for --on-error skip "
                                                     "(default: OUTPUT-stem.rejects.jsonl).")] = None,
        tmp_dir: Annotated[Path | None, typer.Option("--tmp-dir", help="Folder for the spool and shuffle "
                                                     "buckets (default: the system temp folder).")] = None,
        image_root: Annotated[Path | None, typer.Option("--image-root", help="Folder that relative image "
                                                        "paths point into; HF output embeds the image bytes "
                                                        "from there (default: the current folder).")] = None,
    ) -> None:
        from ..mix.cli_options import mix_from_command_line

        given = {"strategy": strategy, "stopping": stopping, "temperature": temperature,
                 "temperature_cap": temperature_cap, "weigh_by": weigh_by, "batches": batches,
                 "batch_size": batch_size, "image_fraction": image_fraction, "allow_repeat": allow_repeat,
                 "size": size, "stages": stages, "dedup": dedup, "shuffle_memory_mb": shuffle_memory,
                 "to_fmt": to_fmt, "on_error": on_error, "seed": seed, "output": output}
        run(mix_from_command_line, inputs or [], recipe, given, manifest=manifest, rejects=rejects,
            tmp_dir=tmp_dir, image_root=image_root, log=info)
