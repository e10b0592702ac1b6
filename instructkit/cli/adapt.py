"""`instructkit adapt`: VQA / caption datasets to instruction data (library: ``adapt.job.run_adapt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import info, run
from .llm_options import (
    DEFAULT_CACHE,
    ApiKey,
    BaseUrl,
    Cache,
    CacheOnly,
    Concurrency,
    DryRun,
    Failed,
    MaxCost,
    MaxRetries,
    Model,
    NoCache,
    Prices,
    Rpm,
    Timeout,
    Tpm,
    llm_config,
)

SRC = "Source"
TPL = "Templates and answers"
OUT = "Output"


def register(app: typer.Typer) -> None:
    @app.command("adapt", help="Turn a VQA or caption dataset into instruction data: keep the image, turn each "
                 "question into an instruction through prompt templates (the 10 InstructBLIP VQA templates, "
                 "LLaVA-1.5 short-answer and multiple-choice prompts, caption and OCR prompts, or your own), "
                 "reduce multi-annotator answers by a policy, and optionally let an LLM rewrite question and "
                 "answer while a check keeps the answer. Readers: VQAv2/OK-VQA (questions + --annotations), "
                 "GQA, A-OKVQA, TextVQA, COCO captions, or any table/JSONL/parquet/HF dataset with named "
                 "columns. Prints a funnel at the end.")
    def adapt_cmd(
        input: Annotated[Path, typer.Argument(help="Source file: VQAv2/OK-VQA questions JSON, GQA questions "
                                               "JSON, A-OKVQA JSON, TextVQA JSON, COCO captions JSON, or a "
                                               "CSV/TSV/JSONL/JSON/parquet table or HF datasets folder.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Output file: .jsonl = canonical, "
                                             ".json = LLaVA, a folder or .parquet = HF; --to overrides.")],
        annotations: Annotated[Optional[Path], typer.Option(
            "--annotations", help="VQAv2/OK-VQA annotations file joined to INPUT by question_id.",
            rich_help_panel=SRC)] = None,
        source: Annotated[str, typer.Option("--source", help="Reader: auto, vqav2, gqa, aokvqa, textvqa, "
                                            "coco-captions, generic.", rich_help_panel=SRC)] = "auto",
        image_root: Annotated[Optional[Path], typer.Option(
            "--image-root", help="Folder the image paths are relative to (checked on disk unless "
            "--no-check-images).", rich_help_panel=SRC)] = None,
        image_pattern: Annotated[Optional[str], typer.Option(
            "--image-pattern", help="Image file name from the row, a Python format string with {image_id} "
            "(and {subtype} for VQAv2), e.g. 'COCO_{subtype}_{image_id:012d}.jpg' or '{image_id:012d}.jpg'. "
            "Default: the source's own convention (VQAv2: whichever of the two exists).",
            rich_help_panel=SRC)] = None,
        image_col: Annotated[str, typer.Option("--image-col", help="Generic reader: image path column.",
                                               rich_help_panel=SRC)] = "image",
        question_col: Annotated[str, typer.Option("--question-col", help="Generic reader: question column.",
                                                  rich_help_panel=SRC)] = "question",
        answer_col: Annotated[Optional[str], typer.Option(
            "--answer-col", help="Generic reader: answer column, a string or a list (default: 'answers' if "
            "present, else 'answer'). With --choices-col: the correct choice (text, letter or index).",
            rich_help_panel=SRC)] = None,
        choices_col: Annotated[Optional[str], typer.Option(
            "--choices-col", help="Generic reader: multiple-choice options (a list, or one string split on "
            "'|').", rich_help_panel=SRC)] = None,
        ocr_col: Annotated[Optional[str], typer.Option("--ocr-col", help="Generic reader: OCR tokens column.",
                                                       rich_help_panel=SRC)] = None,
        id_col: Annotated[Optional[str], typer.Option("--id-col", help="Generic reader: row id kept in "
                                                      "meta.question_id.", rich_help_panel=SRC)] = None,
        check_images: Annotated[bool, typer.Option("--check-images/--no-check-images", help="Check each "
                                                   "distinct image's file header once.", rich_help_panel=SRC)] = True,
        limit: Annotated[Optional[int], typer.Option("--limit", min=0, help="Read only the first N source rows.",
                                                     rich_help_panel=SRC)] = None,
        shard: Annotated[Optional[str], typer.Option(
            "--shard", help="K/N: process source rows K, K+N, K+2N, ... (run N processes, concatenate the "
            "outputs; rows are identical to an unsharded run).", rich_help_panel=SRC)] = None,
        num_proc: Annotated[int, typer.Option(
            "--num-proc", min=1, help="Worker processes for a big JSONL input with canonical JSONL output: the "
            "file is cut into N slices at line boundaries and the parts concatenated; the output is "
            "byte-identical to one process.", rich_help_panel=SRC)] = 1,
        templates: Annotated[Optional[str], typer.Option(
            "--templates", help="Family name (vqa, vqa-short, vqa-mc, caption, ocr), a .jinja file or a folder "
            "of them. Default by reader: vqa; A-OKVQA vqa-mc; TextVQA ocr; COCO caption.",
            rich_help_panel=TPL)] = None,
        strategy: Annotated[str, typer.Option("--strategy", help="random: one template per row, seeded; cycle: "
                                              "in turn; all: one row per template (K times the rows).",
                                              rich_help_panel=TPL)] = "random",
        seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice.", rich_help_panel=TPL)] = 0,
        answers: Annotated[str, typer.Option("--answers", help="Multi-annotator answer policy: majority, "
                                             "first, all (one row per distinct answer), confident.",
                                             rich_help_panel=TPL)] = "majority",
        task: Annotated[Optional[str], typer.Option("--task", help="Task name written to each record "
                                                    "(default from the template family).",
                                                    rich_help_panel=TPL)] = None,
        merge_by_image: Annotated[bool, typer.Option("--merge-by-image", help="All questions of one image in one "
                                                     "multi-turn conversation.", rich_help_panel=TPL)] = False,
        max_turns: Annotated[Optional[int], typer.Option("--max-turns", min=1, help="With --merge-by-image: "
                                                         "split conversations longer than this.",
                                                         rich_help_panel=TPL)] = None,
        shuffle_turns: Annotated[bool, typer.Option("--shuffle-turns", help="With --merge-by-image: shuffle "
                                                    "each image's questions by seed (default: source order).",
                                                    rich_help_panel=TPL)] = False,
        mc_shuffle: Annotated[bool, typer.Option("--mc-shuffle/--no-mc-shuffle", help="Shuffle multiple-choice "
                                                 "options by seed.", rich_help_panel=TPL)] = True,
        mc_repeat: Annotated[bool, typer.Option("--mc-repeat", help="One row per rotation of the options "
                                                "(LLaVA-1.5 repeats A-OKVQA once per choice).",
                                                rich_help_panel=TPL)] = False,
        to: Annotated[Optional[str], typer.Option("--to", help="Output format: canonical, llava, sharegpt, "
                                                  "openai, alpaca, hf.", rich_help_panel=OUT)] = None,
        lean: Annotated[bool, typer.Option("--lean", help="Foreign formats: drop instructkit's source, task and "
                                           "meta keys.", rich_help_panel=OUT)] = False,
        source_name: Annotated[Optional[str], typer.Option("--source-name", help="Value of each record's source "
                                                           "field (default: the reader's name).",
                                                           rich_help_panel=OUT)] = None,
        on_error: Annotated[str, typer.Option("--on-error", help="fail: stop at the first bad row, naming file "
                                              "and line; skip: write it to the rejects file with its reason.",
                                              rich_help_panel=OUT)] = "fail",
        rejects: Annotated[Optional[Path], typer.Option("--rejects", help="Rejects file (default with skip: "
                                                        "OUTPUT.rejects.jsonl).", rich_help_panel=OUT)] = None,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.",
                                               rich_help_panel=OUT)] = True,
        rewrite: Annotated[bool, typer.Option("--rewrite", help="Let the LLM rewrite each question into a "
                                              "natural instruction and the answer into a fuller response; a row "
                                              "whose rewrite loses the answer keeps its template version.",
                                              rich_help_panel="Rewrite")] = False,
        rewrite_examples: Annotated[Optional[Path], typer.Option(
            "--rewrite-examples", help="Few-shot JSONL (default: the shipped seeds/rewrite/examples.jsonl).",
            rich_help_panel="Rewrite")] = None,
        rewrite_temperature: Annotated[float, typer.Option("--rewrite-temperature", help="Sampling temperature "
                                                           "of the rewrite.", rich_help_panel="Rewrite")] = 0.7,
        model: Model = "gpt-4o-mini",
        base_url: BaseUrl = None,
        api_key: ApiKey = None,
        concurrency: Concurrency = 16,
        rpm: Rpm = None,
        tpm: Tpm = None,
        max_retries: MaxRetries = 6,
        timeout: Timeout = 60.0,
        cache: Cache = DEFAULT_CACHE,
        no_cache: NoCache = False,
        cache_only: CacheOnly = False,
        prices: Prices = None,
        max_cost: MaxCost = None,
        dry_run: DryRun = False,
        failed: Failed = None,
    ) -> None:
        from ..adapt.job import run_adapt

        cfg = None
        if rewrite:
            cfg = run(llm_config, model=model, base_url=base_url, api_key=api_key, concurrency=concurrency,
                      rpm=rpm, tpm=tpm, max_retries=max_retries, timeout=timeout, cache=cache, no_cache=no_cache,
                      cache_only=cache_only, prices=prices, max_cost=max_cost, dry_run=dry_run, failed=failed,
                      progress=progress)
        run(run_adapt, input, output, annotations=annotations, source=source, to=to, lean=lean,
            templates=templates, strategy=strategy, seed=seed, answers=answers, task=task,
            source_name=source_name, image_root=image_root, image_pattern=image_pattern,
            check_images=check_images, on_error=on_error, rejects=rejects, limit=limit, shard=shard,
            merge_by_image=merge_by_image, max_turns=max_turns, shuffle_turns=shuffle_turns,
            mc_shuffle=mc_shuffle, mc_repeat=mc_repeat, image_col=image_col, question_col=question_col,
            answer_col=answer_col, choices_col=choices_col, ocr_col=ocr_col, id_col=id_col, rewrite=rewrite,
            llm_config=cfg, rewrite_examples=rewrite_examples, rewrite_temperature=rewrite_temperature,
            num_proc=num_proc, progress=progress, log=info)
