"""`instructkit self-instruct`: LLaVA-style generation from captions + boxes, text Self-Instruct bootstrap and
Evol-Instruct (library: ``self_instruct.job.run_self_instruct``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import run
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

SRC = "Images (--mode images)"
TXT = "Text (--mode text)"
GEN = "Generation"
OUT = "Output"


def register(app: typer.Typer) -> None:
    @app.command("self-instruct", help="Generate instruction data with an LLM from a few hand-written "
                 "demonstrations. --mode images (default): LLaVA-Instruct recipes from COCO captions + boxes "
                 "(or JSONL rows): conversation (captions only), detail and reasoning (captions + boxes), with "
                 "guardrails that drop leaks, count contradictions, refusals, one-sided or repeated turns. "
                 "--mode text: Self-Instruct bootstrap from seed tasks with an exact ROUGE-L < 0.7 filter, "
                 "then an input/output per instruction. --evolve N adds Evol-Instruct rounds. Prints a funnel.")
    def self_instruct_cmd(
        output: Annotated[Path, typer.Option("--output", "-o", help="Output file: .jsonl = canonical, "
                                             ".json = LLaVA; --to overrides.")],
        mode: Annotated[str, typer.Option("--mode", help="images: from captions/boxes; text: Self-Instruct "
                                          "bootstrap of text-only tasks.")] = "images",
        captions: Annotated[Optional[Path], typer.Option(
            "--captions", help="COCO captions file (captions_*.json): images with width/height + captions.",
            rich_help_panel=SRC)] = None,
        instances: Annotated[Optional[Path], typer.Option(
            "--instances", help="COCO instances file (instances_*.json): boxes (xywh pixels) and category "
            "names. Without it detail and reasoning see captions only.", rich_help_panel=SRC)] = None,
        input: Annotated[Optional[Path], typer.Option(
            "--input", help="Generic JSONL instead of COCO: {image, width, height, captions, boxes: [{label, "
            "bbox, format?}], box_format?}.", rich_help_panel=SRC)] = None,
        box_format: Annotated[Optional[str], typer.Option(
            "--box-format", help="Convention of --input boxes that do not name one: layout xyxy|xywh|cxcywh "
            "and units px|norm|1000, e.g. xyxy-px, xywh-px (COCO), cxcywh-norm (YOLO), xyxy-1000.",
            rich_help_panel=SRC)] = None,
        image_root: Annotated[Optional[Path], typer.Option(
            "--image-root", help="Folder the image paths are relative to (needed by --vision).",
            rich_help_panel=SRC)] = None,
        recipe: Annotated[str, typer.Option(
            "--recipe", help="all (one of each per image), one recipe, counts per image "
            "'conversation=2,detail=1', or ratios 'conversation=0.37,detail=0.15,reasoning=0.48' (one recipe "
            "per image, drawn by seed; LLaVA-Instruct-150K's mix).", rich_help_panel=SRC)] = "all",
        vision: Annotated[bool, typer.Option("--vision", help="Send the image itself (a vision-capable model "
                                             "is needed), with the text context unless --no-context.",
                                             rich_help_panel=SRC)] = False,
        context: Annotated[bool, typer.Option("--context/--no-context", help="With --vision: also send the "
                                              "captions/boxes text.", rich_help_panel=SRC)] = True,
        demos: Annotated[Optional[Path], typer.Option(
            "--demos", help="Folder with your few-shot demonstrations {recipe}.jsonl ({image, context, "
            "response}) and their images/ (default: the shipped seeds/self_instruct).",
            rich_help_panel=SRC)] = None,
        template_dir: Annotated[Optional[list[Path]], typer.Option(
            "--template-dir", help="Folder whose self_instruct/*.jinja override the shipped prompts "
            "(repeatable).", rich_help_panel=GEN)] = None,
        limit: Annotated[Optional[int], typer.Option("--limit", min=0, help="Use only the first N images.",
                                                     rich_help_panel=SRC)] = None,
        min_words: Annotated[Optional[int], typer.Option("--min-words", min=0, help="Fewest words in an answer "
                                                         "(default per recipe: 1 / 30 / 15).",
                                                         rich_help_panel=SRC)] = None,
        max_words: Annotated[Optional[int], typer.Option("--max-words", min=1, help="Most words in an answer "
                                                         "(default per recipe: 300 / 600 / 600).",
                                                         rich_help_panel=SRC)] = None,
        seed_tasks: Annotated[Optional[Path], typer.Option(
            "--seed-tasks", help="Seed tasks in Self-Instruct's JSONL shape (default: the shipped 26).",
            rich_help_panel=TXT)] = None,
        num_instructions: Annotated[int, typer.Option("--num-instructions", min=0, help="New instructions to "
                                                      "bootstrap (0: use the seed instructions as they are).",
                                                      rich_help_panel=TXT)] = 20,
        batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Prompts per bootstrap round.",
                                                rich_help_panel=TXT)] = 4,
        max_rounds: Annotated[Optional[int], typer.Option("--max-rounds", min=1, help="Stop bootstrapping after "
                                                          "this many rounds even if short (default: enough for "
                                                          "4x the needed prompts).", rich_help_panel=TXT)] = None,
        threshold: Annotated[float, typer.Option("--rouge-threshold", help="Keep a new instruction only if its "
                                                 "ROUGE-L F1 with every pooled one is below this.",
                                                 rich_help_panel=TXT)] = 0.7,
        keep_image_words: Annotated[bool, typer.Option(
            "--keep-image-words", help="Do not apply Self-Instruct's keyword blacklist (image, picture, graph, "
            "...): for instructions that will be paired with images.", rich_help_panel=TXT)] = False,
        evolve: Annotated[int, typer.Option("--evolve", min=0, help="Evol-Instruct rounds (in-depth and "
                                            "in-breadth operators; failed, unchanged and prompt-copying "
                                            "evolutions are eliminated and counted). Text: over the instructions; "
                                            "images: over each kept record's first question, answered again "
                                            "from the image's context.", rich_help_panel=GEN)] = 0,
        temperature: Annotated[float, typer.Option("--temperature", rich_help_panel=GEN,
                                                   help="Sampling temperature.")] = 0.7,
        top_p: Annotated[float, typer.Option("--top-p", rich_help_panel=GEN, help="Nucleus sampling.")] = 1.0,
        max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, rich_help_panel=GEN,
                                                help="Most tokens per reply; a reply cut here is dropped "
                                                "(counted as truncated).")] = 1024,
        seed: Annotated[int, typer.Option("--seed", rich_help_panel=GEN, help="Seed of every random choice "
                                          "(and sent to the endpoint).")] = 0,
        parse_retries: Annotated[int, typer.Option("--parse-retries", min=0, rich_help_panel=GEN,
                                                   help="Ask again this many times when a reply cannot be "
                                                   "parsed; then the row goes to --failed.")] = 2,
        to: Annotated[Optional[str], typer.Option("--to", help="Output format: canonical, llava, sharegpt, "
                                                  "openai, alpaca, hf.", rich_help_panel=OUT)] = None,
        rejects: Annotated[Optional[Path], typer.Option("--rejects", help="JSONL of images that could not be "
                                                        "used and replies dropped by a guardrail, with the "
                                                        "reason and the raw reply.", rich_help_panel=OUT)] = None,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.",
                                               rich_help_panel=OUT)] = True,
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
        from ..self_instruct.job import run_self_instruct

        cfg = run(llm_config, model=model, base_url=base_url, api_key=api_key, concurrency=concurrency,
                  rpm=rpm, tpm=tpm, max_retries=max_retries, timeout=timeout, cache=cache, no_cache=no_cache,
                  cache_only=cache_only, prices=prices, max_cost=max_cost, dry_run=dry_run, failed=failed,
                  progress=progress)
        run(run_self_instruct, output=output, llm=cfg, mode=mode, captions=captions, instances=instances,
            input_jsonl=input, box_format=box_format, image_root=image_root, recipe=recipe, vision=vision,
            with_context=context, demos_dir=demos, template_dirs=template_dir or (), seed_tasks=seed_tasks,
            num_instructions=num_instructions, batch_size=batch_size, max_rounds=max_rounds,
            evolve_rounds=evolve, keep_image_words=keep_image_words, threshold=threshold,
            temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed, min_words=min_words,
            max_words=max_words, limit=limit, rejects=rejects, out_format=to, max_parse_retries=parse_retries)
