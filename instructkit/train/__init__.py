"""Fine-tuning on instructkit output with response-only, multi-turn loss (``instructkit train``).

Core: ``train(records, cfg)`` and ``dry_run(records, cfg)`` take records; ``train_job(paths, cfg)`` reads
files around them. torch / transformers / accelerate / peft are imported inside the functions.
"""

from .config import TrainConfig
from .job import train_job
from .loop import dry_run, train

__all__ = ["TrainConfig", "dry_run", "train", "train_job"]
