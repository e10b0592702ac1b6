"""A small job on top of the engine: a prompts JSONL file in, a completions JSONL file out.

Input rows: ``{"id": ..., "prompt": "..."}`` or ``{"id": ..., "messages": [...]}``, optionally with
``temperature``, ``top_p``, ``max_tokens``, ``seed``, ``system``. Output rows, in input order:
``{"id", "completion", "finish_reason"}``. The output is written to ``<out>.partial`` as rows finish and
renamed at the end, so a killed run never leaves a half file under the real name; rerunning it replays the
finished calls from the cache and sends only the rest.

    python -m instructkit.llm.batch prompts.jsonl out.jsonl --model M --base-url URL --cache c.sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from ..errors import InstructkitError, RowError
from .engine import Engine
from .types import LLMConfig, Request

_SAMPLING = ("temperature", "top_p", "max_tokens", "seed", "stop", "n")


def read_prompts(path: Path, defaults: dict | None = None) -> Iterator[Request]:
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise RowError("bad-json", f"not JSON: {exc}", file=str(path), line=line_no) from None
            if not isinstance(row, dict) or not ("prompt" in row or "messages" in row):
                raise RowError("bad-row", "expected an object with 'prompt' or 'messages'", file=str(path),
                               line=line_no)
            messages = row.get("messages") or [{"role": "user", "content": row["prompt"]}]
            if row.get("system"):
                messages = [{"role": "system", "content": row["system"]}, *messages]
            params = {**(defaults or {}), **{k: row[k] for k in _SAMPLING if k in row}}
            yield Request(key=str(row.get("id", line_no)), messages=messages, meta={"line": line_no}, **params)


def complete_file(in_path: Path | str, out_path: Path | str, config: LLMConfig, *,
                  defaults: dict | None = None) -> dict:
    """Complete every prompt; returns the funnel and the engine's counters."""
    in_path, out_path = Path(in_path), Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    written = 0
    with Engine(config) as engine:
        if config.dry_run:
            estimate = engine.estimate(read_prompts(in_path, defaults))
            return {"dry_run": estimate.as_dict(), "summary": estimate.summary()}
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "w", encoding="utf-8") as out:
            for result in engine.run(read_prompts(in_path, defaults)):
                if not result.ok:
                    continue   # already in the failed-rows file and counted by the engine
                out.write(json.dumps({"id": result.request.key, "completion": result.text,
                                      "finish_reason": result.finish_reason}, ensure_ascii=False) + "\n")
                out.flush()
                written += 1
        if engine.stopped:
            # Keep the real name free of an incomplete file: the rows so far stay in .partial.
            return {"written": written, "stopped": engine.stopped, "partial": str(partial),
                    "stats": engine.stats.as_dict(), "summary": engine.summary()}
        os.replace(partial, out_path)
        return {"written": written, "stopped": None, "stats": engine.stats.as_dict(), "summary": engine.summary()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m instructkit.llm.batch", description=__doc__.split("\n")[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--base-url", action="append", dest="base_urls", required=True)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-retries", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--cache", type=Path, default=Path(".instructkit-cache/llm.sqlite"))
    parser.add_argument("--failed", type=Path, default=None)
    parser.add_argument("--max-cost", type=float, default=None)
    parser.add_argument("--prices", type=Path, default=None)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0)
    args = parser.parse_args(argv)
    config = LLMConfig(model=args.model, base_urls=args.base_urls, api_key=args.api_key,
                       concurrency=args.concurrency, max_retries=args.max_retries, timeout=args.timeout,
                       cache_path=args.cache, failed_path=args.failed, max_cost=args.max_cost,
                       prices_path=args.prices, dry_run=args.dry_run, progress=False)
    try:
        summary = complete_file(args.input, args.output, config,
                                defaults={"max_tokens": args.max_tokens, "temperature": args.temperature})
    except InstructkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary["summary"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
