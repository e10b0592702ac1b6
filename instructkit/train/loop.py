"""The training loop: a plain torch loop driven by accelerate (DDP / FSDP / DeepSpeed come from the
launcher's accelerate config; the same command runs under ``torchrun`` or ``accelerate launch``).

Loss is the mean over the supervised (response) tokens of an optimizer step's whole accumulation
window, so a long answer weighs as much per token whether it sits in a small or a big micro-batch, and
packing gives the same loss as padding.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..formats.atomic import atomic_write
from ..records import Record
from .batches import collate, epoch_order, plan_batches, token_losses
from .chat import Encoder, choose_template
from .config import TrainConfig
from .model import is_vlm_config, load_config, load_model, load_processor, save_final, trainable_counts
from .preflight import Preflight, format_report, run_preflight

Log = Callable[[str], None]
Where = Callable[[int], tuple[str, str]]
# Models whose image rows can be packed: positions are plain 1-D and each image's features fill its own
# run of image tokens. Qwen2-VL's 3-D rope positions and LLaVA-NeXT's any-res tiles are not handled.
PACKABLE_IMAGE_MODELS = ("llava",)


def _quiet(_: str) -> None:
    pass


def prepare(records: Sequence[Record], cfg: TrainConfig, log: Log = _quiet, *, where: Where | None = None
            ) -> tuple[Encoder, Preflight, str]:
    """Check the model folder, pick the chat template and preflight every row (no weights loaded)."""
    cfg.check()
    if Path(cfg.model).exists():   # absolute, so a saved LoRA adapter finds its base from anywhere
        cfg.model = str(Path(cfg.model).resolve())
    config = load_config(cfg.model, trust_remote_code=cfg.trust_remote_code)
    vlm = is_vlm_config(config)
    n_images = sum(1 for r in records if r.images)
    if n_images and not vlm:
        raise UsageError(f"{n_images} row(s) have images but {cfg.model} is not a vision-language model "
                         f"(model_type {config.model_type!r}); use a model that AutoModelForImageTextToText "
                         "loads, or train on text-only rows")
    processor = load_processor(cfg.model, vlm=vlm, trust_remote_code=cfg.trust_remote_code)
    if vlm and getattr(processor, "tokenizer", None) is None:
        raise UsageError(f"{cfg.model}: AutoProcessor gave no tokenizer")
    tokenizer = processor.tokenizer if vlm else processor
    model_template = getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)
    image_token = getattr(processor, "image_token", "<image>") if vlm else "<image>"
    if cfg.packing and n_images and config.model_type not in PACKABLE_IMAGE_MODELS:
        raise UsageError(f"--packing with image rows is supported for {', '.join(PACKABLE_IMAGE_MODELS)} "
                         f"(1-D positions, one feature block per image), not {config.model_type!r}; train "
                         "without --packing, or pack text-only data")
    template, note = choose_template(cfg.chat_template, model_template, image_token)
    encoder = Encoder(processor, is_vlm=vlm, template=template, image_root=cfg.image_root)
    pf = run_preflight(records, encoder, max_length=cfg.max_length, on_error=cfg.on_error,
                       preview=cfg.preview, progress=log, where=where)
    expected = llava_features_per_image(config)
    if pf.image_tokens is not None and expected is not None and pf.image_tokens != expected:
        raise UsageError(f"{cfg.model}: the processor expands each image to {pf.image_tokens} tokens but the "
                         f"vision tower yields {expected} features per image; check patch_size, "
                         "num_additional_image_tokens and vision_feature_select_strategy in "
                         "processor_config.json against config.json")
    return encoder, pf, note


def llava_features_per_image(config: Any) -> int | None:
    """Image features a LLaVA model produces per image (None for other model types)."""
    if config.model_type != "llava":
        return None
    vc = config.vision_config
    side = vc.image_size // vc.patch_size
    return side * side + (1 if config.vision_feature_select_strategy == "full" else 0)


def dry_run(records: Sequence[Record], cfg: TrainConfig, log: Log = _quiet, *, where: Where | None = None
            ) -> dict:
    """Preflight only. ``where(i)`` gives row i's (file, "line N") for the report (default: "row i")."""
    encoder, pf, note = prepare(records, cfg, log, where=where)
    for line in format_report(pf, note):
        log(line)
    return {"template": note, **pf.to_dict(), "samples": pf.samples}


def split_eval(indices: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    if fraction <= 0:
        return list(indices), []
    order = epoch_order(indices, epoch=-1, seed=seed, shuffle=True)
    k = max(1, round(fraction * len(order)))
    if k >= len(order):
        raise UsageError(f"--eval-split {fraction} leaves no training rows")
    held = set(order[:k])
    return [i for i in indices if i not in held], sorted(held)


class Stats:
    """Token-weighted loss sums per key ('all', 'source/…', 'modality/…')."""

    def __init__(self) -> None:
        self.sum: dict[str, float] = defaultdict(float)
        self.n: dict[str, int] = defaultdict(int)

    def add(self, losses: Any, rows_of_tokens: Any, rows: Sequence[Any]) -> None:
        per_row_sum = defaultdict(float)
        per_row_n = defaultdict(int)
        for r, v in zip(rows_of_tokens.tolist(), losses.detach().tolist()):
            per_row_sum[r] += v
            per_row_n[r] += 1
        for r, s in per_row_sum.items():
            for key in ("all", f"source/{rows[r].source}", f"modality/{rows[r].modality}"):
                self.sum[key] += s
                self.n[key] += per_row_n[r]

    def merged(self, acc: Any) -> dict[str, float]:
        from accelerate.utils import gather_object

        parts = gather_object([(dict(self.sum), dict(self.n))]) if acc.num_processes > 1 else \
            [(self.sum, self.n)]
        s: dict[str, float] = defaultdict(float)
        n: dict[str, int] = defaultdict(int)
        for ps, pn in parts:
            for k, v in ps.items():
                s[k] += v
                n[k] += pn[k]
        return {k: s[k] / n[k] for k in sorted(s) if n[k]} | {"tokens": n.get("all", 0)}


def train(records: Sequence[Record], cfg: TrainConfig, log: Log = _quiet, *, where: Where | None = None) -> dict:
    """Fine-tune ``cfg.model`` on ``records`` with response-only loss; returns the run summary."""
    # The summary records the options as given (prepare() makes the model path absolute for the LoRA
    # adapter's base), so the same command run from another folder writes the same summary.
    given = cfg.to_dict()
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from transformers import get_scheduler

    # A text-only micro-batch leaves the vision tower without gradients on that rank; DDP must be told,
    # or it waits for them forever (and errors on the next step).
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    _fresh_accelerate_state()
    acc = Accelerator(mixed_precision="bf16" if cfg.bf16 else "no", cpu=not _has_accelerator(),
                      kwargs_handlers=[ddp])
    main = acc.is_main_process
    say = log if main else _quiet
    encoder, pf, note = prepare(records, cfg, say, where=where)
    for line in format_report(pf, note):
        if not line.startswith("--- "):           # rendered samples are for --dry-run
            say(line)
    train_idx, eval_idx = split_eval(sorted(pf.lengths), cfg.eval_split, cfg.seed)
    rank, world = acc.process_index, acc.num_processes

    set_seed(cfg.seed)
    model = load_model(cfg, vlm=encoder.is_vlm)
    trainable, total = trainable_counts(model)
    say(f"model: {cfg.model} ({'VLM' if encoder.is_vlm else 'text LM'}), {trainable:,} of {total:,} "
        f"parameters trainable{' (LoRA)' if cfg.lora else ''}; {world} process(es)")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def batches_of(epoch: int) -> list[list[list[int]]]:
        order = epoch_order(train_idx, epoch=epoch, seed=cfg.seed, shuffle=cfg.shuffle)
        plan = plan_batches(order, pf.lengths, batch_size=cfg.batch_size, packing=cfg.packing,
                            max_length=cfg.max_length)
        per_rank = len(plan) // world
        if epoch == 0 and len(plan) % world:
            say(f"note: {len(plan) % world} micro-batch(es) per epoch left out so that all {world} processes "
                "take the same number of steps (the epoch order changes, so different rows each epoch)")
        if per_rank == 0:
            raise UsageError(f"{len(train_idx)} training rows make {len(plan)} micro-batch(es), fewer than "
                             f"the {world} processes; lower --batch-size or use fewer processes")
        # Rank r takes micro-batches r, r+W, ...: every rank sees different rows, in data order.
        return [plan[k * world + rank] for k in range(per_rank)]

    first = batches_of(0)
    steps_per_epoch = math.ceil(len(first) / cfg.grad_accum)
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    scheduler = get_scheduler(cfg.scheduler, optimizer, num_warmup_steps=int(cfg.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    model, optimizer = acc.prepare(model, optimizer)
    acc.register_for_checkpointing(scheduler)

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.resume and main:
        # A fresh run owns its folder: an earlier run's checkpoints would be picked by a later
        # --resume latest, and its extra ranks' seen files would describe a run that no longer exists.
        for old in out.glob("checkpoint-*"):
            if (old / "trainer_state.json").is_file():
                shutil.rmtree(old)
        for old in out.glob("seen.rank*.jsonl"):
            of_rank = old.name[len("seen.rank"):-len(".jsonl")]
            if of_rank.isdigit() and int(of_rank) >= world:
                old.unlink()
    acc.wait_for_everyone()
    step = 0
    if cfg.resume:
        ckpt = latest_checkpoint(out) if cfg.resume == "latest" else Path(cfg.resume)
        if ckpt is None or not (ckpt / "trainer_state.json").is_file():
            raise UsageError(f"--resume {cfg.resume}: no checkpoint found"
                             + (f" in {out}" if cfg.resume == "latest" else ""))
        acc.load_state(str(ckpt))
        step = json.loads((ckpt / "trainer_state.json").read_text())["step"]
        say(f"resumed from {ckpt} at step {step}")

    log_path = out / "train_log.jsonl"
    seen_path = out / f"seen.rank{rank}.jsonl"
    mode = "a" if cfg.resume else "w"
    if cfg.resume:
        # What a previous run logged after the checkpoint belongs to a continuation that is now redone.
        for path in (log_path, seen_path) if main else (seen_path,):
            keep_steps_up_to(path, step)
    log_file = open(log_path, mode, encoding="utf-8") if main else None
    seen_file = open(seen_path, mode, encoding="utf-8")
    pad_id = encoder.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = encoder.tokenizer.eos_token_id or 0
    stats, window_no, last_loss, t0, tokens_seen = Stats(), 0, float("nan"), time.perf_counter(), 0
    say(f"training: {len(train_idx)} rows, {len(eval_idx)} eval rows, {steps_per_epoch} step(s)/epoch, "
        f"{total_steps} step(s), batch {cfg.batch_size} × accum {cfg.grad_accum} × {world} process(es)"
        f"{', packed' if cfg.packing else ''}")

    def emit(row: dict) -> None:
        if log_file:
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()

    epoch, last_eval, resumed_at = 0, None, step
    try:
        while step < total_steps:
            mine = first if epoch == 0 else batches_of(epoch)
            for w in range(0, len(mine), cfg.grad_accum):
                if step >= total_steps:
                    break
                window_no += 1
                if window_no <= step:      # resuming: replay the data order without training
                    continue
                model.train()
                window = [[[encoder.encode(records[i], i) for i in seq] for seq in mb]
                          for mb in mine[w:w + cfg.grad_accum]]
                n_sup = sum(r.supervised for mb in window for seq in mb for r in seq)
                for j, bins in enumerate(window):
                    rows = [r for seq in bins for r in seq]
                    batch = collate(bins, packing=cfg.packing, pad_id=pad_id)
                    sync = nullcontext() if j == len(window) - 1 else acc.no_sync(model)
                    with sync, acc.autocast():
                        logits = model(**to_device(batch["inputs"], acc.device), use_cache=False).logits
                        losses, keep = token_losses(logits, batch["targets"].to(acc.device))
                        acc.backward(losses.sum() / n_sup)
                    stats.add(losses, batch["row_of"].reshape(-1).index_select(0, keep.cpu()), rows)
                    tokens_seen += int(batch["inputs"]["input_ids"].numel())
                if cfg.max_grad_norm:
                    acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                seen_file.write(json.dumps({"step": step, "rows": [records[i].id for mb in mine[w:w + cfg.grad_accum]
                                                                   for seq in mb for i in seq]}) + "\n")
                if step % cfg.log_steps == 0 or step == total_steps:
                    merged = stats.merged(acc)
                    stats = Stats()
                    last_loss = merged.get("all", float("nan"))
                    row = {"step": step, "epoch": epoch, "lr": scheduler.get_last_lr()[0], "loss": last_loss,
                           "by_source": {k[7:]: v for k, v in merged.items() if k.startswith("source/")},
                           "by_modality": {k[9:]: v for k, v in merged.items() if k.startswith("modality/")},
                           "tokens": merged["tokens"], "elapsed_s": round(time.perf_counter() - t0, 2)}
                    emit(row)
                    say(step_line(row, total_steps))
                if eval_idx and cfg.eval_steps and step % cfg.eval_steps == 0:
                    last_eval = evaluate(model, encoder, records, eval_idx, cfg, acc, pad_id, step, say)
                    emit(last_eval)
                if cfg.save_steps and step % cfg.save_steps == 0 and step < total_steps:
                    save_checkpoint(acc, out, step, cfg, say)
            epoch += 1
            # A resumed run replays earlier epochs without training; their evals are already in the log.
            if eval_idx and not cfg.eval_steps and step < total_steps and window_no > resumed_at:
                last_eval = evaluate(model, encoder, records, eval_idx, cfg, acc, pad_id, step, say)
                emit(last_eval)
        eval_row = last_eval
        if eval_idx and (last_eval is None or last_eval["step"] != step):
            eval_row = evaluate(model, encoder, records, eval_idx, cfg, acc, pad_id, step, say)
            emit(eval_row)
    finally:
        seen_file.close()
        if log_file:
            log_file.close()

    acc.wait_for_everyone()
    kind = None
    if main:
        kind = save_final(acc.unwrap_model(model), encoder.processor, out, lora=cfg.lora, merge=cfg.merge_lora)
        with atomic_write(out / "instructkit_train.json", "w", encoding="utf-8") as fh:
            json.dump({"config": given, "template": note, "preflight": pf.to_dict(),
                       "eval_rows": eval_idx}, fh, indent=2)
        say(f"saved {kind} weights and the processor to {out}")
    acc.wait_for_everyone()
    return {"steps": step, "final_loss": last_loss, "eval_loss": eval_row["loss"] if eval_row else None,
            "train_rows": len(train_idx), "eval_rows": len(eval_idx), "dropped": dict(pf.dropped),
            "template": note, "saved": kind, "output": str(out), "processes": world,
            "tokens_seen": tokens_seen}


def keep_steps_up_to(path: Path, step: int) -> None:
    """Drop the JSON lines of ``path`` logged after ``step`` (atomically; a missing file stays missing)."""
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as src, atomic_write(path, "w", encoding="utf-8") as dst:
        for line in src:
            if line.strip() and json.loads(line)["step"] <= step:
                dst.write(line)


def step_line(row: dict, total_steps: int) -> str:
    """The terminal line of a logged step; the parts are labelled because a source is often named like a
    modality ("text")."""
    parts = [f"step {row['step']}/{total_steps} loss {row['loss']:.4f}"]
    for label, key in (("modality", "by_modality"), ("source", "by_source")):
        if row[key]:
            parts.append(f"{label}: " + " ".join(f"{k} {v:.3f}" for k, v in row[key].items()))
    return " | ".join(parts)


def to_device(inputs: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}


def _fresh_accelerate_state() -> None:
    """accelerate keeps one process-wide state and refuses a second Accelerator with other settings
    (e.g. --bf16 after a fp32 run in the same notebook or test process). The process group is kept."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def _has_accelerator() -> bool:
    """accelerate treats a torchrun launch without GPUs as single-process unless told to use the CPU;
    telling it so is what makes the 2-process gloo run work."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available()) or \
        bool(mps and mps.is_available())


def evaluate(model: Any, encoder: Encoder, records: Sequence[Record], eval_idx: list[int], cfg: TrainConfig,
             acc: Any, pad_id: int, step: int, say: Log) -> dict:
    import torch

    model.eval()
    stats = Stats()
    mine = eval_idx[acc.process_index::acc.num_processes]
    with torch.no_grad():
        for k in range(0, len(mine), cfg.batch_size):
            rows = [encoder.encode(records[i], i) for i in mine[k:k + cfg.batch_size]]
            batch = collate([[r] for r in rows], packing=False, pad_id=pad_id)
            with acc.autocast():
                logits = model(**to_device(batch["inputs"], acc.device), use_cache=False).logits
            losses, keep = token_losses(logits, batch["targets"].to(acc.device))
            stats.add(losses, batch["row_of"].reshape(-1).index_select(0, keep.cpu()), rows)
    merged = stats.merged(acc)
    model.train()
    row = {"step": step, "eval": True, "loss": merged.get("all", float("nan")),
           "by_source": {k[7:]: v for k, v in merged.items() if k.startswith("source/")},
           "by_modality": {k[9:]: v for k, v in merged.items() if k.startswith("modality/")},
           "tokens": merged["tokens"]}
    say(f"eval at step {step}: loss {row['loss']:.4f}")
    return row


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted((p for p in out.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
                    and (p / "trainer_state.json").is_file()),
                   key=lambda p: int(p.name.split("-")[-1]))
    return found[-1] if found else None


def save_checkpoint(acc: Any, out: Path, step: int, cfg: TrainConfig, say: Log) -> None:
    ckpt = out / f"checkpoint-{step}"
    acc.save_state(str(ckpt))
    if acc.is_main_process:
        # written last: a checkpoint without it (crash while saving) is never picked by --resume latest
        with atomic_write(ckpt / "trainer_state.json", "w", encoding="utf-8") as fh:
            json.dump({"step": step}, fh)
        say(f"checkpoint: {ckpt}")
        if cfg.save_total_limit:
            found = sorted((p for p in out.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                           key=lambda p: int(p.name.split("-")[-1]))
            for old in found[:-cfg.save_total_limit]:
                shutil.rmtree(old)
    acc.wait_for_everyone()
