"""CLIP image–text similarity for `instructkit filter --clip PATH`, batched, on the GPU when there is one.

data-juicer scores one sample at a time; here pairs are scored ``batch_size`` at a time (one forward pass of
each tower per batch). Weights load from a local folder only (``CLIPModel.save_pretrained`` plus its
processor); torch and transformers are imported on first use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UsageError


class ClipScorer:
    """Cosine similarity of CLIP image and text embeddings for (image, text) pairs."""

    def __init__(self, path: str | Path, *, device: str | None = None, batch_size: int = 64):
        if batch_size < 1:
            raise UsageError("--clip-batch must be at least 1")
        self.path = Path(path)
        self.batch_size = batch_size
        _check_clip_folder(self.path)
        import torch
        from transformers import CLIPModel, CLIPProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the funnel is the progress report; keep stderr readable
        try:
            self.model = CLIPModel.from_pretrained(self.path, local_files_only=True)
            self.processor = CLIPProcessor.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"--clip {self.path}: cannot load a CLIP model and processor from it: {exc}") from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        cfg = self.model.config
        self.image_size = int(cfg.vision_config.image_size)
        self.max_text_tokens = int(cfg.text_config.max_position_embeddings)

    def load_image(self, path: str | Path) -> Any:
        """Decode an image for CLIP; JPEGs are decoded at reduced scale (CLIP looks at a few hundred px)."""
        from PIL import Image

        with Image.open(path) as im:
            im.draft("RGB", (self.image_size * 2, self.image_size * 2))
            return im.convert("RGB")

    def score(self, images: list[Any], texts: list[str]) -> list[float]:
        """Cosine similarity of each image with the text at the same position."""
        if len(images) != len(texts):
            raise ValueError("images and texts must have the same length")
        out: list[float] = []
        for start in range(0, len(images), self.batch_size):
            out += self._score_batch(images[start:start + self.batch_size], texts[start:start + self.batch_size])
        return out

    def _score_batch(self, images: list[Any], texts: list[str]) -> list[float]:
        import torch

        inputs = self.processor(text=texts, images=images, return_tensors="pt", padding=True,
                                truncation=True, max_length=self.max_text_tokens)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            img = self.model.get_image_features(pixel_values=inputs["pixel_values"])
            txt = self.model.get_text_features(input_ids=inputs["input_ids"],
                                               attention_mask=inputs.get("attention_mask"))
            img = _embeds(img)
            txt = _embeds(txt)
            img = img / img.norm(dim=-1, keepdim=True)
            txt = txt / txt.norm(dim=-1, keepdim=True)
            sims = (img * txt).sum(dim=-1)
        return sims.float().cpu().tolist()


def _embeds(out: Any) -> Any:
    # transformers 5 returns a model output whose pooler_output holds the projected embedding; 4.x a tensor.
    return out if hasattr(out, "norm") else out.pooler_output


def _check_clip_folder(path: Path) -> None:
    if not path.is_dir():
        raise UsageError(f"--clip {path}: not a folder (expected a CLIP model saved with save_pretrained)")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise UsageError(f"--clip {path}: no config.json there, so it is not a saved model folder")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--clip {cfg_file}: cannot read it as JSON: {exc}") from None
    model_type = cfg.get("model_type") if isinstance(cfg, dict) else None
    if model_type != "clip":
        raise UsageError(f"--clip {path}: not a CLIP model (config.json has model_type={model_type!r}; "
                         "expected 'clip', a folder written by CLIPModel.save_pretrained with its processor)")
    if not (path / "preprocessor_config.json").is_file() and not (path / "processor_config.json").is_file():
        raise UsageError(f"--clip {path}: the CLIP processor is missing (no preprocessor_config.json); save it "
                         "with CLIPProcessor.save_pretrained into the same folder")
