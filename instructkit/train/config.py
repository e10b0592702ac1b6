"""Options of a training run (one dataclass, shared by the library, the CLI and the recipes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UsageError

FREEZE_GROUPS = ("vision", "projector", "llm")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_min_lr")
ATTN = ("sdpa", "eager", "flash_attention_2")
TEMPLATE_POLICIES = ("auto", "model", "builtin")


@dataclass
class TrainConfig:
    model: str
    output: str
    image_root: str = "."
    max_length: int = 2048
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"
    max_grad_norm: float = 1.0
    seed: int = 0
    shuffle: bool = True
    packing: bool = False
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    merge_lora: bool = False
    freeze: list[str] = field(default_factory=list)
    gradient_checkpointing: bool = False
    bf16: bool = False
    attn: str = "sdpa"
    chat_template: str = "auto"          # auto | model | builtin | path to a .jinja file
    eval_split: float = 0.0
    eval_steps: int | None = None
    save_steps: int | None = None
    save_total_limit: int | None = None
    resume: str | None = None            # a checkpoint dir, or "latest"
    log_steps: int = 10
    trust_remote_code: bool = False
    on_error: str = "fail"               # missing images: fail | skip (counted)
    preview: int = 2                     # rendered samples shown by preflight

    def check(self) -> TrainConfig:
        if self.max_length < 8:
            raise UsageError(f"--max-length {self.max_length} is too small")
        for name in ("batch_size", "grad_accum", "log_steps", "lora_r"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError("--max-steps must be at least 1")
        if self.epochs <= 0:
            raise UsageError("--epochs must be positive")
        if not 0.0 <= self.eval_split < 1.0:
            raise UsageError("--eval-split is a fraction in [0, 1)")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise UsageError("--warmup is a fraction of the steps in [0, 1)")
        if self.scheduler not in SCHEDULERS:
            raise UsageError(f"--scheduler must be one of {', '.join(SCHEDULERS)}")
        if self.attn not in ATTN:
            raise UsageError(f"--attn must be one of {', '.join(ATTN)}")
        bad = [g for g in self.freeze if g not in FREEZE_GROUPS]
        if bad:
            raise UsageError(f"--freeze takes {','.join(FREEZE_GROUPS)}; got {','.join(bad)}")
        if self.on_error not in ("fail", "skip"):
            raise UsageError("--on-error must be fail or skip")
        if self.chat_template not in TEMPLATE_POLICIES and not Path(self.chat_template).is_file():
            raise UsageError(f"--chat-template {self.chat_template!r}: not one of "
                             f"{', '.join(TEMPLATE_POLICIES)} and no such file")
        if self.merge_lora and not self.lora:
            raise UsageError("--merge-lora needs --lora")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
