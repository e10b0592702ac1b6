"""`instructkit train`: fine-tune a VLM (or a text LM) with response-only multi-turn loss."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import info, run


def register(app: typer.Typer) -> None:
    @app.command("train", help="Fine-tune a local vision-language model (or a text-only causal LM) on "
                 "instructkit data with loss on the responses only. Runs as is under torchrun or "
                 "accelerate launch. --dry-run renders samples with the loss-bearing tokens marked, checks "
                 "every row and stops.")
    def _cmd(
        data: Annotated[list[Path], typer.Argument(help="Data file(s): canonical JSONL, LLaVA JSON or "
                                                   "ShareGPT (auto-detected), read in the order given.")],
        model: Annotated[str, typer.Option("--model", "-m", help="Local Hugging Face model folder.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Folder for weights, processor, "
                                             "checkpoints and train_log.jsonl.")] = Path("train-out"),
        image_root: Annotated[Path, typer.Option(help="Folder the records' image paths are relative to.")]
        = Path("."),
        fmt: Annotated[Optional[str], typer.Option("--from", help="Force the input format.")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Preflight only: render samples, check "
                                              "labels and lengths, load no weights.")] = False,
        max_length: Annotated[int, typer.Option(help="Longest row in tokens (image tokens included); "
                                                "longer rows are dropped and counted.")] = 2048,
        epochs: Annotated[float, typer.Option(help="Passes over the data (fractions allowed).")] = 1.0,
        max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many optimizer steps "
                                                         "(overrides --epochs).")] = None,
        batch_size: Annotated[int, typer.Option(help="Rows per micro-batch and process (with "
                                                "--packing: packed sequences of <= max-length tokens).")] = 4,
        grad_accum: Annotated[int, typer.Option(help="Micro-batches per optimizer step.")] = 1,
        lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-5,
        weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.0,
        warmup: Annotated[float, typer.Option(help="Warm-up as a fraction of the steps.")] = 0.03,
        scheduler: Annotated[str, typer.Option(help="linear | cosine | constant | constant_with_warmup.")]
        = "cosine",
        max_grad_norm: Annotated[float, typer.Option(help="Gradient clipping (0: off).")] = 1.0,
        seed: Annotated[int, typer.Option(help="Seed of the shuffle, the eval split and the init.")] = 0,
        no_shuffle: Annotated[bool, typer.Option("--no-shuffle", help="Keep the file's row order (e.g. the "
                                                 "modality or ratio batches written by mix).")] = False,
        packing: Annotated[bool, typer.Option("--packing", help="Padding-free packing with position ids "
                                              "(no attention mask, use_cache off).")] = False,
        lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters on the language model "
                                           "(vision tower and projector excluded).")] = False,
        lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
        lora_alpha: Annotated[int, typer.Option(help="LoRA alpha.")] = 32,
        lora_dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = 0.0,
        lora_targets: Annotated[str, typer.Option(help="Comma-separated Linear layer names to adapt.")]
        = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
        merge_lora: Annotated[bool, typer.Option("--merge-lora", help="Save merged weights instead of "
                                                 "the adapter.")] = False,
        freeze: Annotated[str, typer.Option(help="Comma-separated groups to freeze: vision, projector, "
                                            "llm.")] = "",
        gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help="Recompute "
                                                             "activations in the backward pass: less memory, "
                                                             "about a third more time.")] = False,
        bf16: Annotated[bool, typer.Option("--bf16", help="bf16 mixed precision.")] = False,
        attn: Annotated[str, typer.Option(help="sdpa | eager | flash_attention_2.")] = "sdpa",
        chat_template: Annotated[str, typer.Option(help="auto (the model's if it has {% generation %} "
                                                   "markers, else built-in) | model | builtin | a .jinja "
                                                   "file.")] = "auto",
        eval_split: Annotated[float, typer.Option(help="Fraction of rows held out for eval loss.")] = 0.0,
        eval_steps: Annotated[Optional[int], typer.Option(help="Evaluate every N steps (default: each "
                                                          "epoch).")] = None,
        save_steps: Annotated[Optional[int], typer.Option(help="Checkpoint every N steps.")] = None,
        save_total_limit: Annotated[Optional[int], typer.Option(help="Keep only the last N checkpoints.")]
        = None,
        resume: Annotated[Optional[str], typer.Option(help="Checkpoint folder to resume from, or "
                                                      "'latest'.")] = None,
        log_steps: Annotated[int, typer.Option(help="Log every N steps.")] = 10,
        preview: Annotated[int, typer.Option(help="Rendered samples shown by the preflight.")] = 2,
        on_error: Annotated[str, typer.Option(help="Rows whose images are missing: fail | skip "
                                              "(counted).")] = "fail",
        trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Run the model folder's "
                                                        "own Python code (off unless asked).")] = False,
    ) -> None:
        from ..train import TrainConfig, train_job

        cfg = TrainConfig(
            model=model, output=str(output), image_root=str(image_root), max_length=max_length,
            epochs=epochs, max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
            weight_decay=weight_decay, warmup_ratio=warmup, scheduler=scheduler, max_grad_norm=max_grad_norm,
            seed=seed, shuffle=not no_shuffle, packing=packing, lora=lora, lora_r=lora_r,
            lora_alpha=lora_alpha, lora_dropout=lora_dropout,
            lora_targets=[t for t in lora_targets.split(",") if t], merge_lora=merge_lora,
            freeze=[g for g in freeze.split(",") if g], gradient_checkpointing=gradient_checkpointing,
            bf16=bf16, attn=attn, chat_template=chat_template, eval_split=eval_split, eval_steps=eval_steps,
            save_steps=save_steps, save_total_limit=save_total_limit, resume=resume, log_steps=log_steps,
            trust_remote_code=trust_remote_code, on_error=on_error, preview=preview)
        summary = run(train_job, [str(p) for p in data], cfg, fmt=fmt, dry=dry_run, log=info)
        if not dry_run and summary.get("saved"):
            info(f"done: {summary['steps']} step(s), final loss {summary['final_loss']:.4f}"
                 + (f", eval loss {summary['eval_loss']:.4f}" if summary.get("eval_loss") is not None else ""))
