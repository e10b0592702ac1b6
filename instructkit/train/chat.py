"""Records → token ids and response-only labels, through the model's chat template.

The labels come from the template's ``{% generation %}`` markers (``return_assistant_tokens_mask``), applied
by the processor *after* image-token expansion, so they stay aligned on image rows. A template without
those markers gives an all-zero mask, which is how LLaVA-style training silently learns nothing: we never
use such a template. ``auto`` takes the model's template when it has markers and the built-in one when it
does not; ``model`` fails instead; a path loads a Jinja file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RowError, UsageError
from ..records import IMAGE_TOKEN, Record, is_url

IGNORE = -100
_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")

# Plain-text template for models that ship none (or one without generation markers). Image parts are
# rendered as the processor's image token (filled in by ``builtin_template``).
_BUILTIN = (
    "{{ bos_token or '' }}"
    "{% for m in messages %}"
    "{% if m['content'] is string %}{% set text = m['content'] %}"
    "{% else %}{% set ns = namespace(t='') %}"
    "{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}{% set ns.t = ns.t + @IMAGE@ %}"
    "{% else %}{% set ns.t = ns.t + p['text'] %}{% endif %}"
    "{% endfor %}{% set text = ns.t %}{% endif %}"
    "{% if m['role'] == 'system' %}{{ text }}\n\n"
    "{% elif m['role'] == 'user' %}USER: {{ text }}\n"
    "{% else %}ASSISTANT: {% generation %}{{ text }}{{ eos_token }}{% endgeneration %}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)


def builtin_template(image_token: str = IMAGE_TOKEN) -> str:
    return _BUILTIN.replace("@IMAGE@", repr(image_token))


def has_generation_markers(template: str | None) -> bool:
    return bool(template) and bool(_GENERATION.search(template))


def choose_template(policy: str, model_template: str | None, image_token: str) -> tuple[str, str]:
    """(template text, sentence saying which one and why)."""
    if policy == "builtin":
        return builtin_template(image_token), "built-in template (--chat-template builtin)"
    if policy not in ("auto", "model"):
        path = Path(policy)
        text = path.read_text(encoding="utf-8")
        if not has_generation_markers(text):
            raise UsageError(f"{path}: chat template has no {{% generation %}} markers, so no token would "
                             "carry loss; wrap each assistant answer (and its EOS) in "
                             "{% generation %}…{% endgeneration %}")
        return text, f"template from {path}"
    if has_generation_markers(model_template):
        return model_template, "the model's chat template (it has {% generation %} markers)"
    why = "the model has no chat template" if not model_template else \
        "the model's chat template has no {% generation %} markers"
    if policy == "model":
        raise UsageError(f"--chat-template model: {why}, so the response-only loss mask would be empty; "
                         "use --chat-template auto (built-in template) or a .jinja file with markers")
    return builtin_template(image_token), f"built-in template ({why})"


@dataclass
class Encoded:
    """One row ready for a batch. ``targets`` are next-token labels already shifted within the row
    (``targets[t]`` is the label of position t), so packing cannot leak a label across rows."""

    index: int
    source: str
    modality: str
    input_ids: list[int]
    labels: list[int]
    extras: dict[str, Any] = field(default_factory=dict)   # pixel_values, image_sizes, ...
    per_token: dict[str, list[int]] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def supervised(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)

    @property
    def targets(self) -> list[int]:
        return self.labels[1:] + [IGNORE]


class Encoder:
    """Renders and tokenises records for one model (a processor for VLMs, a tokenizer for text LMs)."""

    def __init__(self, processor: Any, *, is_vlm: bool, template: str, image_root: str | Path = "."):
        self.processor = processor
        self.is_vlm = is_vlm
        self.template = template
        self.image_root = Path(image_root)
        self.tokenizer = processor.tokenizer if is_vlm else processor
        self.image_token = getattr(processor, "image_token", IMAGE_TOKEN) if is_vlm else IMAGE_TOKEN
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.image_token) if is_vlm else None

    def load_image(self, path: str, row: int, record: Record) -> Any:
        from PIL import Image, UnidentifiedImageError

        if is_url(path):
            raise RowError("image-url", f"record {record.id}: image {path!r} is a URL; download it and "
                           "point --image-root at the folder", row=row)
        full = Path(path) if path.startswith("/") else self.image_root / path
        try:
            with Image.open(full) as img:
                return img.convert("RGB")
        except FileNotFoundError:
            raise RowError("image-missing", f"record {record.id}: image {path!r} not found under "
                           f"--image-root {self.image_root}", row=row) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise RowError("image-corrupt", f"record {record.id}: image {path!r} cannot be read: {exc}",
                           row=row) from None

    def messages(self, record: Record, row: int, *, with_images: bool = True) -> list[dict]:
        images = iter(record.images)
        out = []
        for m in record.messages:
            if not self.is_vlm:
                out.append({"role": m.role, "content": m.content})
                continue
            parts: list[dict] = []
            for i, piece in enumerate(m.content.split(IMAGE_TOKEN)):
                if i:
                    path = next(images)
                    parts.append({"type": "image",
                                  "image": self.load_image(path, row, record) if with_images else path})
                if piece:
                    parts.append({"type": "text", "text": piece})
            out.append({"role": m.role, "content": parts})
        return out

    def encode(self, record: Record, row: int) -> Encoded:
        if record.images and not self.is_vlm:
            raise UsageError(f"row {row}: record {record.id} has images but the model is text-only")
        msgs = self.messages(record, row)
        kwargs = dict(chat_template=self.template, tokenize=True, return_dict=True,
                      return_assistant_tokens_mask=True)
        if self.is_vlm:
            out = self.processor.apply_chat_template(msgs, return_tensors="pt", **kwargs)
            ids = out["input_ids"][0].tolist()
            mask = [int(v) for v in out["assistant_masks"][0].tolist()]
            extras, per_token = {}, {}
            for k, v in out.items():
                if k in ("input_ids", "attention_mask", "assistant_masks"):
                    continue
                # per-token side inputs (e.g. mm_token_type_ids) are padded / packed like input_ids
                if v.ndim == 2 and v.shape == out["input_ids"].shape and not v.is_floating_point():
                    per_token[k] = v[0].tolist()
                else:
                    extras[k] = v
        else:
            out = self.tokenizer.apply_chat_template(msgs, **kwargs)
            ids, mask, extras, per_token = list(out["input_ids"]), list(out["assistant_masks"]), {}, {}
        labels = [t if k else IGNORE for t, k in zip(ids, mask)]
        enc = Encoded(row, record.source or "?", record.modality, ids, labels, extras, per_token)
        self._check(enc, record, mask, row)
        return enc

    def _check(self, enc: Encoded, record: Record, mask: list[int], row: int) -> None:
        if enc.supervised == 0:
            raise RowError("zero-labels", f"record {record.id}: no token carries loss under the chat "
                           "template (its {% generation %} markers wrap nothing); training would "
                           "silently learn nothing", row=row)
        spans = sum(1 for i, k in enumerate(mask) if k and (i == 0 or not mask[i - 1]))
        turns = sum(1 for m in record.messages if m.role == "assistant")
        if spans != turns:
            raise RowError("template-mismatch", f"record {record.id}: the template marks {spans} "
                           f"loss-bearing span(s) but the record has {turns} assistant turn(s)", row=row)
        if self.is_vlm and record.images:
            runs = image_runs(enc.input_ids, self.image_token_id)
            if len(runs) != len(record.images) or any(r == 0 for r in runs):
                raise RowError("image-token-mismatch", f"record {record.id}: {len(record.images)} image(s) "
                               f"but {len(runs)} image-token run(s) after rendering", row=row)
            if any(enc.labels[i] != IGNORE for i, t in enumerate(enc.input_ids) if t == self.image_token_id):
                raise RowError("image-token-labelled", f"record {record.id}: image tokens inside the "
                               "loss mask; the template's {% generation %} span covers the image", row=row)


def image_runs(ids: list[int], image_token_id: int | None) -> list[int]:
    """Lengths of the contiguous runs of image tokens (one run per image for LLaVA-style models)."""
    runs: list[int] = []
    prev = False
    for t in ids:
        cur = t == image_token_id
        if cur and not prev:
            runs.append(0)
        if cur:
            runs[-1] += 1
        prev = cur
    return runs


def render_marked(enc: Encoded, tokenizer: Any, image_token_id: int | None) -> str:
    """The row as text with loss-bearing spans in «…» and image-token runs collapsed to <image×N>."""
    out: list[str] = []
    i, ids, n = 0, enc.input_ids, enc.length
    while i < n:
        j = i
        if image_token_id is not None and ids[i] == image_token_id:
            while j < n and ids[j] == image_token_id:
                j += 1
            out.append(f"<image×{j - i}>")
        else:
            sup = enc.labels[i] != IGNORE
            while j < n and (enc.labels[j] != IGNORE) == sup and ids[j] != image_token_id:
                j += 1
            text = tokenizer.decode(ids[i:j], skip_special_tokens=False)
            out.append(f"«{text}»" if sup else text)
        i = j
    return "".join(out)
