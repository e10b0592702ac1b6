"""Text-only Self-Instruct: bootstrap new instructions from a seed pool, then generate an instance for each.

Each round sends ``batch_size`` prompts; each prompt lists ``prompt_instructions`` tasks (up to
``machine_in_prompt`` of them generated earlier, the rest seeds, shuffled) and the model continues the list.
A candidate is kept when it passes the length and keyword filters and its ROUGE-L F1 with every pooled
instruction (seeds and kept ones) is below the threshold. Rounds go on until ``num_instructions`` are kept
or ``max_rounds`` have run. ``generate(requests, parse)`` is the engine's ``run`` (injected, so the loop is
testable and opens nothing).
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ..llm import ParseRejected, Request, Result
from ..quality.rouge import RougeIndex
from ..templates import TemplateEngine

BOOTSTRAP = "self_instruct/text_bootstrap"
INSTANCE = "self_instruct/text_instance"

# Self-Instruct's blacklist: words a text-only model cannot act on. It would delete every vision-language
# instruction, so multimodal use turns it off (keep_image_words).
BLACKLIST = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
             "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram")

TOO_FEW_WORDS = "too-few-words"
TOO_MANY_WORDS = "too-many-words"
BLACKLISTED = "blacklisted-word"
PUNCT_START = "starts-with-punctuation"
NEAR_DUPLICATE = "near-duplicate"
SURPLUS = "surplus"
NO_OUTPUT = "no-output"

Generate = Callable[[list[Request], Callable], Iterable[Result]]

_TASK_LABEL = re.compile(r"^\s*(?:task\s*)?\d+\s*[:.)]\s*", re.I | re.M)


@dataclass
class TextSettings:
    num_instructions: int = 100
    batch_size: int = 4
    prompt_instructions: int = 8
    machine_in_prompt: int = 2
    max_rounds: int | None = None
    threshold: float = 0.7
    min_words: int = 4
    max_words: int = 150
    keep_image_words: bool = False
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int = 0

    def rounds_cap(self) -> int:
        return self.max_rounds if self.max_rounds is not None else \
            max(10, 4 * math.ceil(self.num_instructions / max(1, self.batch_size)))


@dataclass
class Bootstrap:
    instructions: list[str] = field(default_factory=list)
    rounds: int = 0
    candidates: int = 0
    dropped: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)


def parse_task_list(text: str, finish_reason: str) -> list[str]:
    """Instructions in a continuation of a numbered task list. The first item follows the prompt's open
    ``Task N:`` label; a list cut by max_tokens loses its last (unfinished) item, as in Self-Instruct."""
    if not text or not text.strip():
        raise ParseRejected("empty-reply")
    parts = _TASK_LABEL.split(text)
    items = [" ".join(p.split()) for p in parts]
    items = [i for i in items if i]
    if finish_reason == "length" and items:
        items = items[:-1]
    if not items:
        raise ParseRejected("no-tasks")
    return items


def filter_reason(instruction: str, settings: TextSettings) -> str | None:
    words = instruction.split()
    if len(words) < settings.min_words:
        return TOO_FEW_WORDS
    if len(words) > settings.max_words:
        return TOO_MANY_WORDS
    if not instruction[0].isalnum():
        return PUNCT_START
    if not settings.keep_image_words:
        low = " " + " ".join(re.findall(r"\w+", instruction.lower())) + " "
        if any(f" {w} " in low for w in BLACKLIST):
            return BLACKLISTED
    return None


def bootstrap_requests(round_no: int, seeds: list[str], machine: list[str], settings: TextSettings,
                       templates: TemplateEngine) -> list[Request]:
    out = []
    for b in range(settings.batch_size):
        rng = random.Random(f"{settings.seed}:bootstrap:{round_no}:{b}")
        k_machine = min(settings.machine_in_prompt, len(machine))
        chosen = rng.sample(machine, k_machine) if k_machine else []
        chosen += rng.sample(seeds, min(len(seeds), settings.prompt_instructions - k_machine))
        rng.shuffle(chosen)
        prompt = templates.render(BOOTSTRAP, instructions=chosen).rstrip()
        out.append(Request(key=f"bootstrap:{round_no}:{b}", messages=[{"role": "user", "content": prompt}],
                           temperature=settings.temperature, top_p=settings.top_p,
                           max_tokens=settings.max_tokens, seed=settings.seed,
                           sample_index=round_no * settings.batch_size + b,
                           meta={"stage": "bootstrap", "round": round_no}))
    return out


def bootstrap(seeds: list[str], settings: TextSettings, generate: Generate, templates: TemplateEngine,
              pool: RougeIndex | None = None) -> Bootstrap:
    """Generate instructions until ``num_instructions`` novel ones are kept (or the round cap is hit)."""
    pool = pool if pool is not None else RougeIndex(settings.threshold, seeds)
    out = Bootstrap()
    while len(out.instructions) < settings.num_instructions and out.rounds < settings.rounds_cap():
        requests = bootstrap_requests(out.rounds, seeds, out.instructions, settings, templates)
        out.rounds += 1
        answered = 0
        for res in generate(requests, parse_task_list):
            answered += 1
            if not res.ok:
                out.failed[res.reason or "error"] += 1
                continue
            good = []
            for cand in res.parsed:
                out.candidates += 1
                reason = filter_reason(cand, settings)
                if reason:
                    out.dropped[reason] += 1
                else:
                    good.append(cand)
            for cand, keep in zip(good, pool.filter_batch(good)):
                if not keep:
                    out.dropped[NEAR_DUPLICATE] += 1
                elif len(out.instructions) < settings.num_instructions:
                    out.instructions.append(cand)
                else:
                    out.dropped[SURPLUS] += 1
        if not answered:        # the engine stopped (budget, dry run): more rounds would not help
            break
    return out


@dataclass
class Instance:
    input: str
    output: str


_INPUT = re.compile(r"^\s*(?:\*\*)?input(?:\*\*)?\s*:(?:\*\*)?", re.I | re.M)
_OUTPUT = re.compile(r"^\s*(?:\*\*)?output(?:\*\*)?\s*:(?:\*\*)?", re.I | re.M)
_NOINPUT = re.compile(r"^\s*(?:<\s*no\s*input\s*>|none|n/?a|no input|-)?\s*\.?\s*$", re.I)


def parse_instance(text: str, finish_reason: str) -> Instance | None:
    """``Input: …`` / ``Output: …``; None for a reply cut by max_tokens (counted, not retried)."""
    if finish_reason == "length":
        return None
    if not text or not text.strip():
        raise ParseRejected("empty-reply")
    out = _OUTPUT.search(text)
    if out is None:
        raise ParseRejected(NO_OUTPUT)
    output = text[out.end():].strip()
    if not output:
        raise ParseRejected(NO_OUTPUT)
    inp = _INPUT.search(text, 0, out.start())
    value = text[inp.end():out.start()].strip() if inp else ""
    if _NOINPUT.match(value):
        value = ""
    return Instance(value, output)


def instance_requests(items: Iterable[tuple[str, dict]], settings: TextSettings,
                      templates: TemplateEngine) -> Iterator[Request]:
    """One request per (instruction, meta) for its input/output."""
    for k, (instruction, meta) in enumerate(items):
        prompt = templates.render(INSTANCE, instruction=instruction).rstrip()
        yield Request(key=f"instance:{k}", messages=[{"role": "user", "content": prompt}],
                      temperature=settings.temperature, top_p=settings.top_p, max_tokens=settings.max_tokens,
                      seed=settings.seed, meta={**meta, "stage": "instance", "instruction": instruction})
