"""The image recipes (LLaVA-Instruct): conversation, detail, reasoning; their prompts and reply parsers.

A prompt is the recipe's system message, then one (user: context, assistant: reply) pair per few-shot
demonstration, then the user turn with the query image's context. The conversation recipe is shown captions
only; detail and reasoning captions and boxes (LLaVA's split). With ``vision`` the image itself is sent as a
content part, with the text context or alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..llm import ParseRejected
from ..templates import TemplateEngine
from .context import render_context
from .guardrails import Limits
from .inputs import ImageContext
from .parse import EMPTY_REPLY, NO_BLOCKS, Parsed, parse_qa, parse_single

RECIPES = ("conversation", "detail", "reasoning")
WITH_BOXES = {"conversation": False, "detail": True, "reasoning": True}
TASK = {"conversation": "conversation", "detail": "detail", "reasoning": "reasoning"}
DETAIL_PROMPTS = "self_instruct/detail_prompts"
USER = "self_instruct/user"
TRUNCATED = "truncated"

# Answer length bounds in words; a detailed description that is one line long is not one.
DEFAULT_LIMITS = {
    "conversation": Limits(min_answer_words=1, max_answer_words=300),
    "detail": Limits(min_answer_words=30, max_answer_words=600),
    "reasoning": Limits(min_answer_words=15, max_answer_words=600),
}


@dataclass
class Demo:
    image: str
    context: str
    response: str


@dataclass
class Plan:
    """Per image: fixed ``counts`` of each recipe, or one recipe drawn with ``weights``."""

    counts: dict[str, int] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)

    def assign(self, image_id: str, seed: int) -> list[tuple[str, int]]:
        """(recipe, sample index) pairs for one image; a weighted draw is seeded by (seed, image id) so that
        it does not depend on the order or the number of images."""
        if self.counts:
            return [(r, k) for r, n in self.counts.items() for k in range(n)]
        rng = random.Random(f"{seed}:{image_id}")
        names = list(self.weights)
        return [(rng.choices(names, weights=[self.weights[n] for n in names])[0], 0)]


def parse_plan(spec: str) -> Plan:
    """``all`` | ``detail`` | ``conversation=2,detail=1`` (counts per image) |
    ``conversation=0.37,detail=0.15,reasoning=0.48`` (one recipe per image, drawn with these weights)."""
    spec = spec.strip()
    if spec == "all":
        return Plan(counts=dict.fromkeys(RECIPES, 1))
    items: dict[str, str] = {}
    for part in spec.split(","):
        name, eq, value = part.strip().partition("=")
        name = name.strip()
        if name not in RECIPES:
            raise UsageError(f"--recipe: unknown recipe {name!r}; expected all or any of {', '.join(RECIPES)}")
        if name in items:
            raise UsageError(f"--recipe: {name} given twice")
        items[name] = value.strip() if eq else "1"
    if any("." in v for v in items.values()):
        try:
            weights = {k: float(v) for k, v in items.items()}
        except ValueError:
            raise UsageError(f"--recipe {spec!r}: weights must be numbers") from None
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise UsageError(f"--recipe {spec!r}: weights must be non-negative with a positive sum")
        return Plan(weights=weights)
    try:
        counts = {k: int(v) for k, v in items.items()}
    except ValueError:
        raise UsageError(f"--recipe {spec!r}: counts must be whole numbers (or use decimals for ratios)") from None
    if any(c < 0 for c in counts.values()) or not any(counts.values()):
        raise UsageError(f"--recipe {spec!r}: counts must be non-negative and not all zero")
    return Plan(counts={k: v for k, v in counts.items() if v})


def load_demos(rows: list[dict], where: str) -> list[Demo]:
    out = []
    for k, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not all(isinstance(row.get(f), str) for f in ("context", "response")):
            raise UsageError(f"{where}:{k}: a demonstration needs string fields 'context' and 'response'")
        out.append(Demo(str(row.get("image", "")), row["context"], row["response"]))
    if not out:
        raise UsageError(f"{where}: no demonstrations")
    return out


def _user_content(text: str, image: str | None) -> Any:
    if image is None:
        return text
    return [{"type": "image", "path": image}, {"type": "text", "text": text}]


def build_messages(recipe: str, ctx: ImageContext, demos: list[Demo], templates: TemplateEngine, *,
                   vision: bool = False, with_context: bool = True, image_path: str | None = None,
                   demo_image_dir: str | None = None) -> list[dict]:
    """The chat messages for one image and recipe. Demonstrations of the same image are left out, so the
    model never sees a worked answer for the very image it is asked about."""
    msgs: list[dict] = [{"role": "system", "content": templates.render(f"self_instruct/{recipe}").strip()}]
    for demo in demos:
        if demo.image and demo.image == ctx.image:
            continue
        demo_img = None
        if vision and demo_image_dir and demo.image:
            demo_img = f"{demo_image_dir.rstrip('/')}/{demo.image}"
        text = templates.render(USER, context=demo.context if (with_context or demo_img is None) else "",
                                vision=demo_img is not None).strip()
        msgs.append({"role": "user", "content": _user_content(text, demo_img)})
        msgs.append({"role": "assistant", "content": demo.response})
    context = render_context(ctx, WITH_BOXES[recipe]) if (with_context or not vision) else ""
    text = templates.render(USER, context=context, vision=vision).strip()
    msgs.append({"role": "user", "content": _user_content(text, image_path if vision else None)})
    return msgs


def detail_prompt(templates: TemplateEngine, image_id: str, seed: int) -> tuple[str, str]:
    """(entry id, text) of the description instruction for one image, drawn by (seed, image id)."""
    entries = templates.family(DETAIL_PROMPTS).entries
    entry = random.Random(f"{seed}:detail:{image_id}").choice(entries)
    return entry.id, entry.render().strip()


@dataclass
class Reply:
    """What a parse hook returns: turns and problems, or a truncated reply that must not be retried."""

    parsed: Parsed | None = None
    truncated: bool = False


def parse_hook(recipe: str):
    """The engine's parse hook for a recipe: garbage raises ``ParseRejected`` (asked again, then a failed
    row); a reply cut by max_tokens is returned marked truncated, to be counted, not retried."""

    def parse(text: str, finish_reason: str) -> Reply:
        if finish_reason == "length":
            return Reply(truncated=True)
        if not text or not text.strip():
            raise ParseRejected(EMPTY_REPLY)
        if recipe == "detail":
            body = parse_single(text)
            if not body:
                raise ParseRejected(EMPTY_REPLY)
            return Reply(Parsed(turns=[("", body)]))
        parsed = parse_qa(text)
        if not parsed.turns and not parsed.problems:
            raise ParseRejected(NO_BLOCKS)
        return Reply(parsed)

    return parse
