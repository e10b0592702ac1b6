"""``--rewrite``: an LLM turns each templated row's question into a natural instruction and its short answer
into a fuller response, and a check makes sure the answer survived.

The check (``answer_kept``), on the VQA-normalised texts (so ``two`` = ``2``, articles and punctuation
ignored):

* yes/no answers: the response says that word and not the opposite one (the opposite: "changed");
* numbers: the exact number appears as a word, and no other number does;
* multiple choice: the response names the correct letter (``(B)``, ``B.``, ``B)``, ``option B``, or just
  ``B``) and no other letter, and the instruction still lists every option;
* anything else: the normalised answer appears as a whole-word run inside the normalised response.

A reply that fails the check is not retried (a second opinion costs as much as the first); the row falls
back to its template version, counted by reason, with the raw reply kept in ``meta.rewrite``. A reply that
is not the JSON object asked for is re-asked (``ParseRejected``) up to ``max_parse_retries`` times.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..errors import UsageError
from ..records import IMAGE_TOKEN
from ..resources import seeds_dir
from ..templates import TemplateEngine
from .answers import normalize
from .core import row_id

SYSTEM = "adapt/rewrite_system"
USER = "adapt/rewrite_user"
_NUMBER = re.compile(r"^\d+(\.\d+)?$")
_OPPOSITE = {"yes": "no", "no": "yes"}
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def default_examples() -> Path:
    return seeds_dir() / "rewrite" / "examples.jsonl"


def load_examples(path: str | Path) -> list[dict]:
    path = Path(path)
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"--rewrite-examples: {path} does not exist") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ex = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"{path}:{n}: not JSON ({exc})") from None
        missing = {"question", "answer", "instruction", "response"} - set(ex)
        if missing:
            raise UsageError(f"{path}:{n}: example lacks {', '.join(sorted(missing))}")
        ex.setdefault("options", [])
        out.append(ex)
    return out


def _words(text: str) -> list[str]:
    return normalize(text).split()


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    if n == 0:
        return False
    first = needle[0]
    return any(haystack[i] == first and haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def _letter_named(text: str, letter: str) -> bool:
    lt = re.escape(letter)
    pattern = (rf"\(\s*{lt}\s*\)|(?<![A-Za-z]){lt}[.):](?![A-Za-z])"
               rf"|(?i:\b(?:option|choice|answer is|answer:))\s*{lt}\b|^\s*{lt}\s*$")
    return re.search(pattern, text) is not None


def answer_kept(answer: str, instruction: str, response: str, *, letter: str | None = None,
                options: list[tuple[str, str]] | None = None) -> str | None:
    """None when the rewrite keeps the answer, else the reason it does not."""
    if letter is not None:
        if not _letter_named(response, letter):
            return "answer-dropped"
        others = [lt for lt, _ in options or () if lt != letter and _letter_named(response, lt)]
        if others:
            return "answer-changed"
        inst = _words(instruction)
        if any(not _contains(inst, _words(text)) for _, text in options or () if _words(text)):
            return "options-dropped"
        return None
    target = _words(answer)
    words = _words(response)
    if not target:
        return "answer-dropped"
    if len(target) == 1 and target[0] in _OPPOSITE:
        if _OPPOSITE[target[0]] in words:
            return "answer-changed"
        return None if target[0] in words else "answer-dropped"
    if len(target) == 1 and _NUMBER.match(target[0]):
        numbers = {w for w in words if _NUMBER.match(w)}
        if target[0] not in numbers:
            return "answer-dropped"
        if numbers - {target[0]}:
            return "answer-changed"
        return None
    return None if _contains(words, target) else "answer-dropped"


def parse_reply(text: str, finish_reason: str) -> dict:
    """The JSON object the prompt asks for; anything else is re-asked."""
    from ..llm import ParseRejected

    if finish_reason == "length":
        raise ParseRejected("truncated")
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise ParseRejected("not-json")
    try:
        obj = orjson.loads(body[start:end + 1])
    except orjson.JSONDecodeError:
        raise ParseRejected("not-json") from None
    if not isinstance(obj, dict):
        raise ParseRejected("not-json")
    inst, resp = obj.get("instruction"), obj.get("response")
    if not isinstance(inst, str) or not inst.strip() or not isinstance(resp, str) or not resp.strip():
        raise ParseRejected("missing-keys")
    return {"instruction": inst.replace(IMAGE_TOKEN, "").strip(), "response": resp.replace(IMAGE_TOKEN, "").strip()}


@dataclass
class RewriteStats:
    kept: int = 0
    fallback: Counter = field(default_factory=Counter)


class Rewriter:
    """Builds the prompts once (system + few-shot are a fixed prefix, which providers cache) and runs
    records through an engine."""

    def __init__(self, *, model: str, examples: str | Path | None = None, seed: int = 0,
                 temperature: float = 0.7, max_tokens: int = 400, engine_templates: TemplateEngine | None = None):
        eng = engine_templates or TemplateEngine()
        self.user_entry = eng.entry(USER)
        self.user_entry.check({"question", "answer", "options"})
        prefix = [{"role": "system", "content": eng.render(SYSTEM)}]
        for ex in load_examples(examples or default_examples()):
            prefix.append({"role": "user", "content": self.user_entry.render(
                question=ex["question"], answer=ex["answer"], options=[tuple(o) for o in ex["options"]])})
            prefix.append({"role": "assistant", "content": orjson.dumps(
                {"instruction": ex["instruction"], "response": ex["response"]}).decode()})
        self.prefix = prefix
        self.model = model
        self.seed = seed
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.stats = RewriteStats()

    def request(self, rec: dict):
        from ..llm import Request

        meta = rec["meta"]
        question = meta.get("question") or ""
        if "answer_letter" in meta:
            options = list(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", meta["choices"]))
            answer = meta["answer_letter"]
        else:
            options = []
            answer = rec["messages"][-1]["content"]
        user = self.user_entry.render(question=question, answer=answer, options=options)
        return Request(key=f"adapt-rewrite:{rec['id']}", messages=[*self.prefix, {"role": "user", "content": user}],
                       temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed,
                       meta={"record_id": rec["id"]}), answer, options

    def run(self, records: Iterable[dict], engine) -> Iterator[dict]:
        """Rewritten (or fallen-back) records, in input order. Rows the engine never answered (budget
        stop, dry run) fall back too, counted as ``not-called``."""
        fed: deque[tuple[dict, str, list]] = deque()
        source = iter(records)

        def requests():
            for rec in source:
                req, answer, options = self.request(rec)
                fed.append((rec, answer, options))
                yield req

        for res in engine.run(requests(), parse=parse_reply, max_parse_retries=2):
            rec, answer, options = fed.popleft()
            yield self._apply(rec, answer, options, res)
        why = getattr(engine, "stopped", None) or "not-called"
        for rec, _, _ in fed:
            yield self._fallback(rec, f"not-called ({why})", None)
        for rec in source:
            yield self._fallback(rec, f"not-called ({why})", None)

    def _apply(self, rec: dict, answer: str, options: list, res) -> dict:
        raw = res.raw if res.raw is not None else res.text
        if not res.ok:
            return self._fallback(rec, f"llm-{res.reason or 'failed'}", raw)
        got = res.parsed
        letter = rec["meta"].get("answer_letter")
        reason = answer_kept(answer, got["instruction"], got["response"], letter=letter, options=options)
        if reason is not None:
            return self._fallback(rec, reason, raw)
        self.stats.kept += 1
        image = rec["images"][0]
        messages = [{"role": "user", "content": IMAGE_TOKEN + "\n" + got["instruction"]},
                    {"role": "assistant", "content": got["response"]}]
        meta = {**rec["meta"], "rewrite": {"kept": True, "model": self.model, "raw": raw, "cached": res.cached,
                                           "template_prompt": rec["messages"][0]["content"],
                                           "template_answer": rec["messages"][1]["content"]}}
        return {"id": row_id([image], messages), "images": [image], "messages": messages,
                "source": rec["source"], "task": rec["task"], "meta": meta}

    def _fallback(self, rec: dict, reason: str, raw: Any) -> dict:
        self.stats.fallback[reason.split(" ")[0]] += 1
        meta = {**rec["meta"], "rewrite": {"kept": False, "reason": reason, "model": self.model, "raw": raw}}
        return {**rec, "meta": meta}
