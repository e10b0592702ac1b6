"""Loading the model and its processor from a local path, LoRA, freezing, saving."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .config import TrainConfig

# Name fragments of each freezable group across LLaVA, LLaVA-NeXT, Qwen2-VL and friends.
GROUPS = {
    "vision": ("vision_tower", "vision_model", "visual."),
    "projector": ("multi_modal_projector", "mm_projector", "visual.merger", "connector"),
}


def group_of(name: str) -> str:
    for group in ("projector", "vision"):
        if any(f in name for f in GROUPS[group]):
            return group
    return "llm"


def is_vlm_config(config: Any) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def load_config(path: str, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoConfig

    p = Path(path)
    if not p.exists():
        raise UsageError(f"model path {path} does not exist (instructkit loads local models only; "
                         "download it first, e.g. with `hf download`)")
    if not (p / "config.json").is_file():
        raise UsageError(f"model path {path} has no config.json; is it a Hugging Face model folder?")
    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (ValueError, KeyError, OSError) as exc:
        raise UsageError(f"cannot read the model config in {path}: {exc}") from None


def load_processor(path: str, *, vlm: bool, trust_remote_code: bool = False) -> Any:
    from transformers import AutoProcessor, AutoTokenizer

    try:
        if vlm:
            return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot load the {'processor' if vlm else 'tokenizer'} from {path}: {exc}") from None


def load_model(cfg: TrainConfig, *, vlm: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    cls = AutoModelForImageTextToText if vlm else AutoModelForCausalLM
    try:
        model = cls.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code,
                                    attn_implementation=cfg.attn, dtype=torch.float32)
    except ImportError as exc:      # e.g. --attn flash_attention_2 without the flash-attn package
        raise UsageError(f"cannot load {cfg.model} with --attn {cfg.attn}: {exc}") from None
    model.config.use_cache = False
    for name, p in model.named_parameters():
        if group_of(name) in cfg.freeze:
            p.requires_grad_(False)
    if cfg.lora:
        model = apply_lora(model, cfg)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.lora:
            model.enable_input_require_grads()
    if not any(p.requires_grad for p in model.parameters()):
        raise UsageError("nothing to train: every parameter is frozen (--freeze)")
    return model


def lora_targets(model: Any, names: list[str]) -> list[str]:
    """Full names of the language model's Linear layers whose last part is in ``names``; the vision
    tower and the projector are left out (LLaVA recipe: they stay frozen under LoRA)."""
    import torch

    found = [n for n, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in names and group_of(n + ".") == "llm"]
    if not found:
        raise UsageError(f"--lora-targets {','.join(names)} match no Linear layer of the language model")
    return found


def apply_lora(model: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=lora_targets(model, cfg.lora_targets), task_type="CAUSAL_LM")
    return get_peft_model(model, lcfg)


WEIGHT_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "model.safetensors",
                "model.safetensors.index.json", "model-*-of-*.safetensors", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "pytorch_model-*-of-*.bin")


def trainable_counts(model: Any) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def save_final(model: Any, processor: Any, out: Path, *, lora: bool, merge: bool) -> str:
    """Save weights (LoRA adapter, merged weights or the full model) with the processor beside them.

    Everything is written to a staging folder inside ``out`` first and then renamed into place file by
    file, so a crash or a full disk while saving leaves no half-written weights for a loader to pick up."""
    out.mkdir(parents=True, exist_ok=True)
    if lora and merge:
        model = model.merge_and_unload()
        kind = "merged"
    else:
        kind = "adapter" if lora else "full"
    staging = out / f".saving-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        saved = {item.name for item in staging.iterdir()}
        # Weights of an earlier run of another kind (an adapter beside full weights, or old shards) would
        # be loaded instead of, or mixed with, the new ones.
        for pattern in WEIGHT_FILES:
            for old in out.glob(pattern):
                if old.name not in saved and old.is_file():
                    old.unlink()
        for item in sorted(staging.iterdir()):
            target = out / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return kind
