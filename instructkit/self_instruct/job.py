"""``run_self_instruct``: the one function the CLI calls. Opens the inputs, runs the engine, writes records,
prints the funnel to stderr and returns it.

Image mode streams: contexts become requests lazily, the engine yields results in input order, and a queue
pairs each result with its context, so memory stays flat however many images there are (the COCO JSON
files themselves are read whole: that is their format). Text mode keeps the instruction pool in memory,
which the ROUGE filter needs.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import RowError, UsageError
from ..formats import RecordWriter, RejectsWriter, read_rows
from ..llm import Engine, LLMConfig, ParseRejected, Request
from ..records import make_record
from ..resources import seeds_dir
from ..templates import TemplateEngine
from .context import render_context
from .evolve import evolve
from .guardrails import Limits, check_turns
from .inputs import ImageContext, coco_contexts, jsonl_contexts
from .parse import EMPTY_REPLY, parse_qa, parse_single
from .recipes import (
    DEFAULT_LIMITS,
    DETAIL_PROMPTS,
    TASK,
    TRUNCATED,
    build_messages,
    detail_prompt,
    load_demos,
    parse_hook,
    parse_plan,
)
from .text import (
    INSTANCE,
    TextSettings,
    bootstrap,
    bootstrap_requests,
    instance_requests,
    parse_instance,
    parse_task_list,
)

SOURCE = "self-instruct"


def _load_json(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise RowError("bad-json", f"not valid JSON: {exc.msg}", file=str(path), line=exc.lineno) from None


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for line, row in read_rows(path):
        if not isinstance(row, dict):
            raise RowError("bad-row", "expected a JSON object", file=str(path), line=line)
        rows.append(row)
    return rows


class _NoWriter:
    """A dry run writes nothing: an empty file would replace the output of an earlier real run."""

    count = 0

    def __enter__(self) -> _NoWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def write(self, record: Any) -> None:
        raise AssertionError("a dry run produced a record")


def _writer(output: Path, fmt: str | None, dry_run: bool):
    return _NoWriter() if dry_run else RecordWriter(output, fmt)


def _print_funnel(funnel: dict) -> None:
    def fmt(c: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "-"

    lines = ["self-instruct funnel:"]
    for key, value in funnel.items():
        if isinstance(value, dict):
            lines.append(f"  {key:<18} {fmt(value)}")
        elif value is not None:
            lines.append(f"  {key:<18} {value}")
    print("\n".join(lines), file=sys.stderr, flush=True)


def run_self_instruct(*, output: str | Path, llm: LLMConfig, mode: str = "images",
                      captions: str | Path | None = None, instances: str | Path | None = None,
                      input_jsonl: str | Path | None = None, box_format: str | None = None,
                      image_root: str | Path | None = None, recipe: str = "all", vision: bool = False,
                      with_context: bool = True, demos_dir: str | Path | None = None,
                      template_dirs: list[str | Path] | tuple = (), seed_tasks: str | Path | None = None,
                      num_instructions: int = 20, batch_size: int = 4, max_rounds: int | None = None,
                      evolve_rounds: int = 0, keep_image_words: bool = False, threshold: float = 0.7,
                      temperature: float = 0.7, top_p: float = 1.0, max_tokens: int = 1024, seed: int = 0,
                      min_words: int | None = None, max_words: int | None = None, limit: int | None = None,
                      rejects: str | Path | None = None, out_format: str | None = None,
                      max_parse_retries: int = 2, engine: Engine | None = None) -> dict:
    """Generate instruction data; see docs/self-instruct.md. ``engine`` may be passed in (tests, pipelines);
    otherwise one is built from ``llm`` and closed at the end."""
    if mode not in ("images", "text"):
        raise UsageError(f"--mode must be images or text, got {mode!r}")
    if evolve_rounds < 0:
        raise UsageError("--evolve must be 0 or more")
    if mode == "images":
        parse_plan(recipe)              # option mistakes fail before an engine is built
        if not vision and not with_context:
            raise UsageError("without --vision the text context is all the model sees; --no-context needs "
                             "--vision")
    templates = TemplateEngine(extra_dirs=template_dirs)
    sampling = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, "seed": seed}
    own_engine = engine is None
    eng = engine if engine is not None else Engine(llm)
    try:
        if own_engine:
            eng.__enter__()
        if mode == "images":
            funnel = _run_images(
                eng, llm, templates, sampling, output=Path(output), captions=captions, instances=instances,
                input_jsonl=input_jsonl, box_format=box_format, image_root=image_root, recipe=recipe,
                vision=vision, with_context=with_context, demos_dir=demos_dir, min_words=min_words,
                max_words=max_words, limit=limit, rejects=rejects, out_format=out_format,
                max_parse_retries=max_parse_retries, evolve_rounds=evolve_rounds)
        else:
            settings = TextSettings(num_instructions=num_instructions, batch_size=batch_size,
                                    max_rounds=max_rounds, threshold=threshold, keep_image_words=keep_image_words,
                                    temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
            funnel = _run_text(eng, llm, templates, sampling, settings, output=Path(output),
                               seed_tasks=seed_tasks, evolve_rounds=evolve_rounds, out_format=out_format,
                               max_parse_retries=max_parse_retries)
    finally:
        if own_engine:
            eng.__exit__(None, None, None)
    if eng.stopped:
        funnel["stopped"] = eng.stopped
    if not llm.dry_run:
        print(eng.summary(), file=sys.stderr, flush=True)
    _print_funnel(funnel)
    return funnel


# -- images -------------------------------------------------------------------------------------------------

def _contexts(captions, instances, input_jsonl, box_format, box_issues: Counter) -> Iterator[ImageContext | RowError]:
    if (captions is None) == (input_jsonl is None):
        raise UsageError("give either --captions (COCO, with optional --instances) or --input (JSONL rows)")
    if captions is not None:
        caps = _load_json(Path(captions))
        inst = _load_json(Path(instances)) if instances is not None else None
        if not isinstance(caps, dict) or (inst is not None and not isinstance(inst, dict)):
            raise UsageError("COCO annotation files must hold one JSON object")
        return coco_contexts(caps, inst, box_issues, captions_file=str(captions),
                             instances_file=str(instances or ""))
    if instances is not None:
        raise UsageError("--instances goes with --captions (COCO); JSONL rows carry their own boxes")
    return jsonl_contexts(read_rows(Path(input_jsonl)), box_issues, file=str(input_jsonl), box_format=box_format)


def _run_images(eng: Engine, llm: LLMConfig, templates: TemplateEngine, sampling: dict, *, output: Path,
                captions, instances, input_jsonl, box_format, image_root, recipe, vision, with_context,
                demos_dir, min_words, max_words, limit, rejects, out_format, max_parse_retries,
                evolve_rounds: int = 0) -> dict:
    if not vision and not with_context:
        raise UsageError("without --vision the text context is all the model sees; --no-context needs --vision")
    plan = parse_plan(recipe)
    recipes = list(plan.counts or plan.weights)
    demo_root = Path(demos_dir) if demos_dir else seeds_dir() / "self_instruct"
    demos = {}
    for r in recipes:
        path = demo_root / f"{r}.jsonl"
        if not path.is_file():
            raise UsageError(f"no demonstrations for recipe {r}: {path} does not exist")
        demos[r] = load_demos(_jsonl(path), str(path))
        templates.entry(f"self_instruct/{r}")          # a missing template fails before any call
    if "detail" in recipes:
        templates.family(DETAIL_PROMPTS)
    demo_images = str(seeds_dir() / "images") if demos_dir is None else str(demo_root / "images")
    root = Path(image_root) if image_root else None
    box_issues: Counter = Counter()
    skipped: Counter = Counter()
    dropped: Counter = Counter()
    failed: Counter = Counter()
    by_task: Counter = Counter()
    counts = {"images read": 0, "requests": 0}
    contexts = _contexts(captions, instances, input_jsonl, box_format, box_issues)
    rej = RejectsWriter(rejects).__enter__() if rejects else None
    parsers = {r: parse_hook(r) for r in recipes}

    def limits_for(name: str) -> Limits:
        base = DEFAULT_LIMITS[name]
        return Limits(min_answer_words=base.min_answer_words if min_words is None else min_words,
                      max_answer_words=base.max_answer_words if max_words is None else max_words,
                      max_question_words=base.max_question_words, repeat_threshold=base.repeat_threshold)

    first_image = [True]

    def request_for(ctx: ImageContext, name: str, k: int) -> Request:
        image_path = None
        if vision:
            image_path = ctx.image if ctx.image.startswith(("http://", "https://")) else \
                str((root / ctx.image) if root else Path(ctx.image))
            if first_image[0] and not image_path.startswith(("http://", "https://")) \
                    and not Path(image_path).is_file():
                # The first image missing is almost always a wrong (or no) --image-root: one clear error
                # instead of every row failing. Later missing images are failed rows, counted.
                raise UsageError(f"--vision: image {image_path} (image {ctx.image_id}) does not exist; "
                                 "--image-root names the folder the image paths are relative to")
            first_image[0] = False
        msgs = build_messages(name, ctx, demos[name], templates, vision=vision, with_context=with_context,
                              image_path=image_path, demo_image_dir=demo_images)
        return Request(key=f"{name}:{ctx.image_id}:{k}", messages=msgs, sample_index=k,
                       meta={"image_id": ctx.image_id, "recipe": name}, **sampling)

    def chunks() -> Iterator[list[ImageContext]]:
        chunk: list[ImageContext] = []
        kept = 0
        for item in contexts:
            if isinstance(item, RowError):
                counts["images read"] += 1
                skipped[item.reason] += 1
                if rej is not None:
                    rej.write(item, None)
                continue
            if limit is not None and kept >= limit:
                break
            counts["images read"] += 1
            kept += 1
            chunk.append(item)
            if len(chunk) >= _CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    written = unanswered = chunk_no = 0
    to_evolve: list[tuple[ImageContext, str]] = []
    evo = {"evolved": 0, "evolve eliminated": Counter(), "evolve operators": Counter(),
           "evolve answers dropped": Counter()}
    try:
        with _writer(output, out_format, llm.dry_run) as writer:
            for chunk in chunks():
                # The engine's parse hook sees only the reply, so each recipe runs as its own batch over the
                # chunk (bounded memory, full concurrency inside a batch); output keeps image order.
                replies: dict[tuple[int, str, int], Any] = {}
                for name in recipes:
                    jobs = [(i, name, k) for i, ctx in enumerate(chunk)
                            for r, k in plan.assign(ctx.image_id, sampling["seed"]) if r == name]
                    if not jobs:
                        continue
                    reqs = [request_for(chunk[i], name, k) for i, _, k in jobs]
                    counts["requests"] += len(reqs)
                    for job, res in zip(jobs, eng.run(reqs, parse=parsers[name], desc=name,
                                                      max_parse_retries=max_parse_retries)):
                        replies[job] = res
                for i, ctx in enumerate(chunk):
                    for name, k in plan.assign(ctx.image_id, sampling["seed"]):
                        res = replies.get((i, name, k))
                        if res is None:        # the engine stopped (budget, dry run) before this request
                            unanswered += 1
                            continue
                        record = _image_record(res, ctx, name, k, templates, sampling, llm, vision, with_context,
                                               limits_for(name), failed, dropped, rej)
                        if record is not None:
                            writer.write(record)
                            written += 1
                            by_task[TASK[name]] += 1
                            if evolve_rounds and name != "detail":
                                first_q = record.messages[0].content.replace("<image>\n", "", 1)
                                to_evolve.append((ctx, first_q))
                if llm.dry_run and evolve_rounds:
                    _estimate_evolve_images(eng, chunk, plan, demos, evolve_rounds, templates, sampling, chunk_no)
                if to_evolve and not eng.stopped:
                    for record in _evolve_images(eng, to_evolve, evolve_rounds, templates, sampling, llm,
                                                 limits_for("reasoning"), evo, chunk_no, max_parse_retries, rej):
                        writer.write(record)
                        written += 1
                        by_task["reasoning"] += 1
                to_evolve = []
                chunk_no += 1
    finally:
        if rej is not None:
            rej.__exit__(None, None, None)
    return {"mode": "images", "images read": counts["images read"], "images skipped": dict(skipped),
            "box issues": dict(box_issues), "requests": counts["requests"], "llm failed": dict(failed),
            "dropped": dict(dropped), "not sent": unanswered or None,
            **({k: (dict(v) if isinstance(v, Counter) else v) for k, v in evo.items()} if evolve_rounds else {}),
            "written": written, "by task": dict(by_task), "output": str(output)}


def _stage(requests) -> str | None:
    """The progress bar's label for one batch: its requests' stage (bootstrap, evolve, instance)."""
    first = requests[0] if isinstance(requests, list) and requests else None
    return first.meta.get("stage") if first is not None else None


def _parse_answer(text: str, finish_reason: str) -> str | None:
    if finish_reason == "length":
        return None
    body = parse_single(text or "")
    if not body:
        raise ParseRejected(EMPTY_REPLY)
    return body


def _evolve_images(eng: Engine, items: list[tuple[ImageContext, str]], rounds: int, templates: TemplateEngine,
                   sampling: dict, llm: LLMConfig, limits: Limits, evo: dict, chunk_no: int,
                   max_parse_retries: int, rej: RejectsWriter | None) -> Iterator:
    """Evolve the first question of each kept conversation / reasoning record with its image's context, then
    answer each surviving evolution from the same context; answers go through the guardrails."""
    settings = TextSettings(temperature=sampling["temperature"], top_p=sampling["top_p"],
                            max_tokens=sampling["max_tokens"], seed=sampling["seed"])

    def generate(requests, parse):
        return eng.run(requests, parse=parse, max_parse_retries=max_parse_retries, desc=_stage(requests))

    contexts = [render_context(ctx, True) for ctx, _ in items]
    ev = evolve([q for _, q in items], rounds, settings, generate, templates, contexts=contexts,
                key=f"evolve-image:{chunk_no}")
    evo["evolve eliminated"].update(ev.eliminated)
    evo["evolve operators"].update(ev.by_operator)
    system = templates.render(ANSWER).strip()
    reqs = [Request(key=f"evolve-answer:{chunk_no}:{j}", meta={"stage": "evolve-answer"}, **sampling,
                    messages=[{"role": "system", "content": system},
                              {"role": "user", "content": templates.render(
                                  ANSWER_USER, context=contexts[e.index], question=e.text).strip()}])
            for j, e in enumerate(ev.evolutions)]
    for e, res in zip(ev.evolutions, generate(reqs, _parse_answer)):
        ctx = items[e.index][0]
        reason = None
        if not res.ok:
            reason = res.reason or "error"
        elif res.parsed is None:
            reason = TRUNCATED
        else:
            reason = check_turns([(e.text, res.parsed)], (), ctx.counts(), limits)
        if reason:
            evo["evolve answers dropped"][reason] += 1
            _reject(rej, reason, f"image {ctx.image_id}: evolved question dropped ({reason})", res)
            continue
        meta = {"recipe": "evolve", "origin": "evolve", "operator": e.operator, "evolve_round": e.round,
                "parent": e.parent, "root": e.root, "generator_template": e.template, "template": ANSWER,
                "model": llm.model, "sampling": dict(sampling), "image_id": ctx.image_id, "raw": res.raw,
                "evolve_raw": e.raw}
        try:
            record = make_record({"images": [ctx.image], "source": SOURCE, "task": "reasoning", "meta": meta,
                                  "messages": [{"role": "user", "content": "<image>\n" + e.text},
                                               {"role": "assistant", "content": res.parsed}]})
        except RowError as exc:
            evo["evolve answers dropped"][f"record:{exc.reason}"] += 1
            continue
        evo["evolved"] += 1
        yield record


def _estimate_evolve_images(eng: Engine, chunk: list[ImageContext], plan, demos: dict, rounds: int,
                            templates: TemplateEngine, sampling: dict, chunk_no: int) -> None:
    """A dry run of image evolution: nothing is generated, so each record that would be evolved is priced
    with its recipe's first demonstration question standing in for its own, every round kept."""
    stand_in = {}
    for name, rows in demos.items():
        turns = parse_qa(rows[0].response).turns if rows and name != "detail" else []
        stand_in[name] = turns[0][0] if turns else "What is happening in this photo, and why?"
    items = [(ctx, stand_in[name]) for ctx in chunk for name, _ in plan.assign(ctx.image_id, sampling["seed"])
             if name != "detail"]
    if not items:
        return
    settings = TextSettings(temperature=sampling["temperature"], top_p=sampling["top_p"],
                            max_tokens=sampling["max_tokens"], seed=sampling["seed"])
    contexts = [render_context(ctx, True) for ctx, _ in items]
    evolve([q for _, q in items], rounds, settings, lambda reqs, parse: eng.run(reqs), templates,
           contexts=contexts, key=f"evolve-image:{chunk_no}")
    system = templates.render(ANSWER).strip()
    reqs = [Request(key=f"evolve-answer:{chunk_no}:{j}", **sampling,
                    messages=[{"role": "system", "content": system},
                              {"role": "user", "content": templates.render(
                                  ANSWER_USER, context=contexts[j % len(items)], question=q).strip()}])
            for j, q in enumerate([q for _ in range(rounds) for _, q in items])]
    for _ in eng.run(reqs):
        pass


ANSWER = "self_instruct/answer"
ANSWER_USER = "self_instruct/answer_user"


_CHUNK = 256


def _image_record(res, ctx: ImageContext, name: str, k: int, templates: TemplateEngine, sampling: dict,
                  llm: LLMConfig, vision: bool, with_context: bool, limits: Limits, failed: Counter,
                  dropped: Counter, rej: RejectsWriter | None):
    where = f"image {ctx.image_id} ({name} #{k})"
    if not res.ok:
        failed[res.reason or "error"] += 1
        return None
    reply = res.parsed
    if reply.truncated:
        dropped[TRUNCATED] += 1
        _reject(rej, TRUNCATED, f"{where}: reply cut by max_tokens", res)
        return None
    parsed = reply.parsed
    entry_id = None
    if name == "detail":
        entry_id, prompt = detail_prompt(templates, ctx.image_id, sampling["seed"])
        parsed.turns = [(prompt, parsed.turns[0][1])]
    reason = check_turns(parsed.turns, parsed.problems, ctx.counts(), limits)
    if reason:
        dropped[reason] += 1
        _reject(rej, reason, f"{where}: dropped by guardrail {reason}", res)
        return None
    msgs = []
    for i, (q, a) in enumerate(parsed.turns):
        msgs.append({"role": "user", "content": ("<image>\n" + q) if i == 0 else q})
        msgs.append({"role": "assistant", "content": a})
    meta = {"recipe": name, "template": f"self_instruct/{name}", "model": llm.model,
            "sampling": dict(sampling, sample_index=k), "image_id": ctx.image_id, "vision": vision,
            "context": with_context, "raw": res.raw}
    if entry_id:
        meta["instruction_template"] = entry_id
    try:
        return make_record({"images": [ctx.image], "messages": msgs, "source": SOURCE, "task": TASK[name],
                            "meta": meta})
    except RowError as exc:      # e.g. the model wrote "<image>" itself
        dropped[f"record:{exc.reason}"] += 1
        _reject(rej, exc.reason, f"{where}: {exc.detail}", res)
        return None


def _reject(rej: RejectsWriter | None, reason: str, message: str, res) -> None:
    if rej is not None:
        rej.write(RowError(reason, message), {"key": res.request.key, "raw": res.raw})


# -- text ---------------------------------------------------------------------------------------------------

def _seed_instructions(path: Path) -> list[str]:
    out = []
    for line, row in read_rows(path):
        inst = row.get("instruction") if isinstance(row, dict) else None
        if not isinstance(inst, str) or not inst.strip():
            raise RowError("missing-field", "a seed task needs an 'instruction' string (Self-Instruct's JSONL "
                           "shape: id, name, instruction, instances, is_classification)", file=str(path), line=line)
        out.append(" ".join(inst.split()))
    if not out:
        raise UsageError(f"{path}: no seed tasks")
    return out


def _run_text(eng: Engine, llm: LLMConfig, templates: TemplateEngine, sampling: dict, settings: TextSettings, *,
              output: Path, seed_tasks, evolve_rounds: int, out_format, max_parse_retries: int) -> dict:
    if settings.num_instructions < 0 or settings.batch_size < 1:
        raise UsageError("--num-instructions must be ≥ 0 and --batch-size ≥ 1")
    path = Path(seed_tasks) if seed_tasks else seeds_dir() / "self_instruct" / "text_tasks.jsonl"
    seeds = _seed_instructions(path)

    def generate(requests, parse):
        return eng.run(requests, parse=parse, max_parse_retries=max_parse_retries, desc=_stage(requests))

    funnel: dict[str, Any] = {"mode": "text", "seed tasks": len(seeds)}
    if llm.dry_run:
        return _estimate_text(eng, seeds, settings, templates, generate, evolve_rounds, funnel, output)
    boot = bootstrap(seeds, settings, generate, templates) if settings.num_instructions else None
    if boot is not None:
        funnel.update({"rounds": boot.rounds, "candidates": boot.candidates, "bootstrap failed": dict(boot.failed),
                       "filtered": dict(boot.dropped), "instructions": len(boot.instructions)})
        if len(boot.instructions) < settings.num_instructions and not eng.stopped:
            funnel["short by"] = settings.num_instructions - len(boot.instructions)
        base = boot.instructions
    else:
        base = seeds
    items: list[tuple[str, dict]] = [(inst, {"origin": "bootstrap" if boot is not None else "seed",
                                             "generator_template": BOOTSTRAP_ID if boot is not None else None})
                                     for inst in base]
    if evolve_rounds and not eng.stopped:
        ev = evolve(base, evolve_rounds, settings, generate, templates)
        funnel.update({"evolved": len(ev.evolutions), "evolve eliminated": dict(ev.eliminated),
                       "evolve operators": dict(ev.by_operator)})
        items += [(e.text, {"origin": "evolve", "operator": e.operator, "generator_template": e.template,
                            "evolve_round": e.round, "parent": e.parent, "root": e.root, "evolve_raw": e.raw})
                  for e in ev.evolutions]
    failed: Counter = Counter()
    dropped: Counter = Counter()
    written = 0
    with _writer(output, out_format, llm.dry_run) as writer:
        if not eng.stopped:
            # A list (the items are in memory already) so the progress bar knows its total and shows an ETA.
            for res in generate(list(instance_requests(items, settings, templates)), parse_instance):
                if not res.ok:
                    failed[res.reason or "error"] += 1
                    continue
                if res.parsed is None:
                    dropped[TRUNCATED] += 1
                    continue
                inst = res.request.meta["instruction"]
                user = inst + ("\n\n" + res.parsed.input if res.parsed.input else "")
                meta = {k: v for k, v in res.request.meta.items() if k not in ("stage", "instruction") and v is not None}
                meta.update({"mode": "text", "instruction": inst, "input": res.parsed.input,
                             "template": INSTANCE, "model": llm.model, "sampling": dict(sampling),
                             "raw": res.raw})
                try:
                    record = make_record({"messages": [{"role": "user", "content": user},
                                                       {"role": "assistant", "content": res.parsed.output}],
                                          "source": SOURCE, "task": "text", "meta": meta})
                except RowError as exc:
                    dropped[f"record:{exc.reason}"] += 1
                    continue
                writer.write(record)
                written += 1
    funnel.update({"instance requests": len(items), "llm failed": dict(failed), "dropped": dict(dropped),
                   "written": written, "output": str(output)})
    return funnel


BOOTSTRAP_ID = "self_instruct/text_bootstrap"


def _estimate_text(eng: Engine, seeds: list[str], settings: TextSettings, templates: TemplateEngine, generate,
                   evolve_rounds: int, funnel: dict, output: Path) -> dict:
    """A dry run of text mode. Later prompts quote earlier replies, so they cannot be rendered before the
    run; they are priced with seed instructions standing in for generated ones, and the bootstrap is
    assumed to keep one instruction per reply (real replies usually give several, so this errs high)."""
    n = settings.num_instructions
    rounds = min(settings.rounds_cap(), math.ceil(n / settings.batch_size)) if n else 0
    stand_ins = [seeds[i % len(seeds)] for i in range(n)] if n else list(seeds)
    for r in range(rounds):
        # Each round's prompts mix seeds with earlier generations: seeds stand in for those, too.
        for _ in generate(bootstrap_requests(r, seeds, stand_ins[: r * settings.batch_size], settings,
                                             templates), parse_task_list):
            pass
    if evolve_rounds:
        # With nothing answered, evolve() renders every round over the same (stand-in) instructions.
        evolve(stand_ins, evolve_rounds, settings, generate, templates)
    items = [(inst, {}) for inst in stand_ins * (1 + evolve_rounds)]
    for _ in generate(list(instance_requests(items, settings, templates)), parse_instance):
        pass
    funnel.update({"estimated rounds": rounds or None, "instance requests": len(items), "written": 0,
                   "output": str(output)})
    return funnel
