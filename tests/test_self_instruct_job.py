"""End to end through the real openai client against the loopback server: image recipes with planted bad
replies and bad inputs, the text bootstrap, Evol-Instruct, the CLI."""

import hashlib
import json
import random
import re
from pathlib import Path

import pytest
from test_rouge import lcs_len  # the suite's one independent, textbook LCS

from instructkit.errors import UsageError
from instructkit.llm import LLMConfig
from instructkit.resources import seeds_dir
from instructkit.self_instruct.job import run_self_instruct
from instructkit.testing.server import LoopbackServer, last_user_text

SEEDS = seeds_dir()
CONV = ("Question:\nWhat is in the picture?\n===\nAnswer:\nA person with some objects around.\n===\n"
        "Question:\nIs it indoors?\n===\nAnswer:\nIt is hard to say, but the light looks natural.\n===")
DETAIL = "The photo shows " + "a calm scene with several objects arranged across the frame, " * 4
REASON = ("Question:\nWhy might this scene have been photographed?\n===\nAnswer:\nThe careful framing and the "
          "clear subject suggest that someone wanted to record the moment and the objects in it.\n===")


def cfg(srv, **kw):
    return LLMConfig(model="loopback", base_urls=[srv.base_url], api_key="sk-test", progress=False,
                     backoff_base=0.001, backoff_cap=0.01, max_retries=1, **kw)


def system_of(body):
    m = body["messages"][0]
    return m["content"] if m["role"] == "system" else ""


def image_reply(body, overrides):
    text = last_user_text(body)
    for needle, reply in overrides:
        if needle in text and needle_matches(body, reply):
            return reply["reply"] if isinstance(reply, dict) and "reply" in reply else reply
    s = system_of(body)
    if "Write a conversation" in s:
        return CONV
    if "Describe the photo in rich detail" in s:
        return DETAIL
    return REASON


def needle_matches(body, reply):
    want = reply.get("system") if isinstance(reply, dict) else None
    return want is None or want in system_of(body)


def test_images_funnel_with_planted_problems(tmp_path):
    # Image 1 (astronaut): conversation reply leaks "caption"; image 2 (cat): garbage conversation, asked again
    # then failed; image 4 (rocket): reasoning contradicts the tower count; image 3 (coffee): detail cut by
    # max_tokens; image 5: conversation repeats a question.
    overrides = [
        ("smiling woman astronaut", {"system": "Write a conversation",
                                     "reply": "Question:\nWhat do the captions say?\n===\nAnswer:\nAn astronaut.\n==="}),
        ("tabby cat's face", {"system": "Write a conversation", "reply": "nice picture, no questions here"}),
        ("rocket stands on the launch pad", {"system": "one question about the photo",
                                             "reply": "Question:\nHow many towers are there?\n===\nAnswer:\n"
                                                      "There are three towers standing around the rocket, "
                                                      "which protect it from lightning.\n==="}),
        ("cup of espresso", {"system": "Describe the photo", "reply": {"content": DETAIL, "finish_reason": "length"}}),
        ("man looking through a camera", {"system": "Write a conversation",
                                          "reply": "Question: What is he doing?\nAnswer: Filming.\n"
                                                   "Question: What is he doing?\nAnswer: Filming a field."}),
    ]
    with LoopbackServer(script=lambda body: image_reply(body, overrides)) as srv:
        out, rej, failed = tmp_path / "out.jsonl", tmp_path / "rej.jsonl", tmp_path / "failed.jsonl"
        funnel = run_self_instruct(output=out, llm=cfg(srv, failed_path=failed),
                                   captions=SEEDS / "coco/captions.json", instances=SEEDS / "coco/instances.json",
                                   rejects=rej, max_parse_retries=1)
        n_requests = len(srv.requests)
    assert funnel["images read"] == 6 and funnel["requests"] == 18
    assert funnel["llm failed"] == {"parse:no-qa-blocks": 1}
    assert n_requests == 19                                  # the garbage reply was asked for twice
    assert funnel["dropped"] == {"leak": 1, "count-contradiction": 1, "truncated": 1, "repeated-question": 1}
    assert funnel["written"] == 18 - 1 - 4
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == funnel["written"]
    assert {r["task"] for r in records} == {"conversation", "detail", "reasoning"}
    first = records[0]
    assert first["messages"][0]["content"].startswith("<image>\n") and first["images"][0].endswith(".jpg")
    assert first["meta"]["model"] == "loopback" and first["meta"]["raw"]
    assert first["meta"]["sampling"]["temperature"] == 0.7
    detail = next(r for r in records if r["task"] == "detail")
    assert detail["meta"]["instruction_template"].startswith("self_instruct/detail_prompts#")
    rejected = [json.loads(line) for line in rej.read_text().splitlines()]
    assert sorted(r["reason"] for r in rejected) == ["count-contradiction", "leak", "repeated-question", "truncated"]
    assert all(r["data"]["raw"] for r in rejected)
    fails = [json.loads(line) for line in failed.read_text().splitlines()]
    assert [f["reason"] for f in fails] == ["parse:no-qa-blocks"]


def test_bad_inputs_are_counted(tmp_path):
    caps = json.loads((SEEDS / "coco/captions.json").read_text())
    inst = json.loads((SEEDS / "coco/instances.json").read_text())
    caps["images"].append({"id": 99, "file_name": "000000000099.jpg", "width": 100, "height": 100})
    inst["annotations"] += [
        {"id": 90, "image_id": 5, "category_id": 1, "bbox": [480, 480, 100, 100]},     # clipped
        {"id": 91, "image_id": 5, "category_id": 1, "bbox": [10, 10, -5, 20]},        # negative size
        {"id": 92, "image_id": 5, "category_id": 999, "bbox": [10, 10, 5, 5]},        # unknown category
        {"id": 93, "image_id": 5, "category_id": 1, "bbox": [600, 10, 5, 5]},         # outside
    ]
    (tmp_path / "c.json").write_text(json.dumps(caps))
    (tmp_path / "i.json").write_text(json.dumps(inst))
    seen = []

    def script(body):
        seen.append(last_user_text(body))
        return CONV if "Write a conversation" in system_of(body) else REASON

    with LoopbackServer(script=script) as srv:
        funnel = run_self_instruct(output=tmp_path / "o.jsonl", llm=cfg(srv), captions=tmp_path / "c.json",
                                   instances=tmp_path / "i.json", recipe="reasoning", rejects=tmp_path / "r.jsonl",
                                   limit=6)
    assert funnel["images skipped"] == {"no-captions": 1}
    assert funnel["images read"] == 7 and funnel["requests"] == 6
    assert funnel["box issues"] == {"box-clipped": 1, "box-negative-size": 1, "unknown-category": 1,
                                    "box-outside-image": 1}
    # The clipped box reaches the prompt, inside the image.
    camera_prompt = next(t for t in seen if "camcorder" in t)
    assert "person: [0.938, 0.938, 1.000, 1.000]" in camera_prompt
    assert camera_prompt.count("person:") == 2
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert rows[0]["reason"] == "no-captions" and rows[0]["row"] == 6


def test_jsonl_input_needs_a_box_convention(tmp_path):
    rows = [{"image": "a.jpg", "width": 200, "height": 100, "captions": ["A red ball on grass."],
             "boxes": [{"label": "ball", "bbox": [0.5, 0.5, 0.2, 0.2], "format": "cxcywh-norm"}]},
            {"image": "b.jpg", "width": 200, "height": 100, "captions": ["Two dogs."],
             "boxes": [{"label": "dog", "bbox": [0, 0, 50, 50]}]}]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    prompts = []

    def script(body):
        prompts.append(last_user_text(body))
        return REASON

    with LoopbackServer(script=script) as srv:
        f1 = run_self_instruct(output=tmp_path / "o.jsonl", llm=cfg(srv), input_jsonl=path, recipe="reasoning")
        assert f1["images skipped"] == {"box-format-missing": 1} and f1["written"] == 1
        assert prompts[-1].endswith("ball: [0.400, 0.400, 0.600, 0.600]")
        f2 = run_self_instruct(output=tmp_path / "o2.jsonl", llm=cfg(srv), input_jsonl=path, recipe="reasoning",
                               box_format="xywh-px")
        assert f2["written"] == 2 and prompts[-1].endswith("dog: [0.000, 0.000, 0.250, 0.500]")


def test_vision_sends_the_image(tmp_path):
    with LoopbackServer(script=lambda body: DETAIL) as srv:
        funnel = run_self_instruct(output=tmp_path / "o.jsonl", llm=cfg(srv), captions=SEEDS / "coco/captions.json",
                                   recipe="detail", vision=True, with_context=False, image_root=SEEDS / "images",
                                   limit=2)
        parts = srv.requests[0]["json"]["messages"][-1]["content"]
    assert funnel["written"] == 2
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert parts[1] == {"type": "text", "text": "Here is the photo."}


def test_options_are_checked(tmp_path):
    with LoopbackServer() as srv:
        with pytest.raises(UsageError, match="either"):
            run_self_instruct(output=tmp_path / "o.jsonl", llm=cfg(srv))
        with pytest.raises(UsageError, match="--no-context needs --vision"):
            run_self_instruct(output=tmp_path / "o.jsonl", llm=cfg(srv), with_context=False,
                              captions=SEEDS / "coco/captions.json")


def test_images_evolve_answers_from_the_context(tmp_path):
    answer_prompts = []

    def script(body):
        s, text = system_of(body), last_user_text(body)
        if "question below about this photo" in text or "new question about this photo" in text:
            original = re.search(r"Original instruction:\n(.+)\n", text).group(1)
            if "rocket" in text:
                return "Rewritten instruction: " + original        # copies the operator prompt
            return original + " Explain which details in the scene support your view."
        if s.startswith("You are a visual AI assistant") and "Answer the question that follows" in s:
            answer_prompts.append(text)
            return ("Looking at the scene, the framing, the light and the position of the main subject all "
                    "point the same way, which supports the reading that the moment was recorded on purpose.")
        return REASON

    with LoopbackServer(script=script) as srv:
        funnel = run_self_instruct(output=tmp_path / "o.jsonl", llm=cfg(srv), recipe="reasoning",
                                   captions=SEEDS / "coco/captions.json", instances=SEEDS / "coco/instances.json",
                                   evolve_rounds=1, limit=5)
    assert funnel["evolve eliminated"] == {"evolve-copied-prompt": 1}        # image 4, the rocket
    assert len(answer_prompts) == 4
    for text in answer_prompts:              # captions, the boxes, then the evolved question
        assert re.search(r"\n\n[a-z ]+: \[\d\.\d{3}, .*\]\n\nQuestion: Why might", text, re.S)
    assert funnel["evolved"] == 4 and funnel["written"] == 5 + 4
    records = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    evolved = [r for r in records if r["meta"].get("origin") == "evolve"]
    assert len(evolved) == 4
    for r in evolved:
        q = r["messages"][0]["content"]
        assert q.startswith("<image>\nWhy might this scene have been photographed?") and q.endswith("view.")
        assert r["task"] == "reasoning" and r["meta"]["template"] == "self_instruct/answer"
        assert r["meta"]["generator_template"].startswith("self_instruct/evol_image#")


# -- text -----------------------------------------------------------------------------------------------------

VOCAB = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
         "romeo sierra tango uniform victor whiskey xray yankee zulu amber basil cedar dune ember fjord grove "
         "harbor island jasper kelp lagoon meadow nectar orchard pebble quartz river summit thicket upland "
         "valley willow yarrow zephyr").split()


def text_reply(body):
    prompt = last_user_text(body)
    rng = random.Random(hashlib.sha256(prompt.encode()).hexdigest())
    if prompt.startswith("Come up with a series"):
        shown = re.findall(r"^Task \d+: (.+)$", prompt, re.M)
        tasks = []
        for _ in range(4):
            tasks.append("Describe " + " ".join(rng.choice(VOCAB) for _ in range(rng.randint(5, 10))) + ".")
        near = shown[rng.randrange(len(shown))].split()
        near[-1] = "zulu."                                      # a near-duplicate of a prompt task
        tasks += [" ".join(near), "Draw a picture of a house by the river.", "Sort it."]
        lines = [tasks[0]] + [f"Task {len(shown) + 2 + i}: {t}" for i, t in enumerate(tasks[1:])]
        return "\n".join(lines)
    if prompt.startswith("Carry out the task below"):
        task = re.search(r"^Task: (.+)$", prompt, re.M).group(1)
        return f"Input: <noinput>\nOutput: Done: {task.lower()}"
    original = re.search(r"Original instruction:\n(.+)\n", prompt).group(1)
    kind = rng.randrange(4)
    if kind == 0:
        return original                                          # unchanged
    if kind == 1:
        return "Rewritten instruction: " + original + " Answer in French."   # copies the prompt
    if kind == 2:
        return "I'm sorry, I can't help with that."             # failed
    return original + " Answer in exactly three sentences and cite one example."


def words(text):
    return re.findall(r"[a-z0-9]+", text.lower())


def f1(a, b):
    ta, tb = words(a), words(b)
    return 0.0 if not ta or not tb else 2 * lcs_len(ta, tb) / (len(ta) + len(tb))


def test_text_bootstrap_reaches_n_novel_instructions(tmp_path):
    n = 30
    with LoopbackServer(script=text_reply) as srv:
        funnel = run_self_instruct(output=tmp_path / "t.jsonl", llm=cfg(srv), mode="text", num_instructions=n,
                                   batch_size=3)
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    insts = [r["meta"]["instruction"] for r in records]
    assert len(insts) == n == funnel["instructions"] == funnel["written"]
    seeds = [json.loads(line)["instruction"] for line in
             (SEEDS / "self_instruct/text_tasks.jsonl").read_text().splitlines()]
    pool = seeds + insts
    for i, a in enumerate(pool):
        for b in pool[i + 1:]:
            assert f1(a, b) < 0.7, (a, b)
    assert funnel["filtered"]["near-duplicate"] >= funnel["rounds"] * 3 - 3
    assert funnel["filtered"]["blacklisted-word"] >= 1 and funnel["filtered"]["too-few-words"] >= 1
    assert records[0]["task"] == "text" and records[0]["messages"][1]["content"].startswith("Done: ")
    assert records[0]["meta"]["origin"] == "bootstrap"


def test_text_is_deterministic_and_keeps_image_words_on_request(tmp_path):
    outs = []
    for k in range(2):
        with LoopbackServer(script=text_reply) as srv:
            funnel = run_self_instruct(output=tmp_path / f"t{k}.jsonl", llm=cfg(srv), mode="text",
                                       num_instructions=8, batch_size=2, keep_image_words=True, seed=3)
        outs.append((tmp_path / f"t{k}.jsonl").read_bytes())
    assert outs[0] == outs[1]
    assert "blacklisted-word" not in funnel["filtered"]
    assert any("picture" in json.loads(line)["meta"]["instruction"] for line in outs[0].decode().splitlines())


def test_evolve_eliminates_and_counts(tmp_path):
    with LoopbackServer(script=text_reply) as srv:
        funnel = run_self_instruct(output=tmp_path / "e.jsonl", llm=cfg(srv), mode="text", num_instructions=0,
                                   evolve_rounds=2)
    eliminated = funnel["evolve eliminated"]
    assert set(eliminated) == {"evolve-unchanged", "evolve-copied-prompt", "evolve-failed"}
    assert funnel["evolved"] + sum(eliminated.values()) == 2 * funnel["seed tasks"]
    records = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    evolved = [r for r in records if r["meta"]["origin"] == "evolve"]
    assert len(evolved) == funnel["evolved"] > 0
    assert len(records) == funnel["seed tasks"] + funnel["evolved"]
    for r in evolved:
        assert r["meta"]["instruction"].startswith(r["meta"]["parent"])
        assert r["meta"]["operator"] in {"add-constraints", "deepen", "concretise", "more-reasoning", "breadth"}
        assert "sorry" not in r["meta"]["instruction"].lower()


def test_cli(tmp_path):
    from typer.testing import CliRunner

    from instructkit.cli import app

    with LoopbackServer(script=lambda body: image_reply(body, [])) as srv:
        result = CliRunner().invoke(app, [
            "self-instruct", "-o", str(tmp_path / "o.json"), "--captions", str(SEEDS / "coco/captions.json"),
            "--instances", str(SEEDS / "coco/instances.json"), "--recipe", "conversation=1,reasoning=1",
            "--model", "loopback", "--base-url", srv.base_url, "--api-key", "sk-test", "--no-cache",
            "--no-progress", "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert "self-instruct funnel" in result.output and "written            6" in result.output
    rows = json.loads((tmp_path / "o.json").read_text())        # .json = LLaVA
    assert len(rows) == 6 and rows[0]["conversations"][0]["from"] == "human"
    bad = CliRunner().invoke(app, ["self-instruct", "-o", str(tmp_path / "x.jsonl"), "--recipe", "chat",
                                   "--captions", str(SEEDS / "coco/captions.json"), "--no-cache"])
    assert bad.exit_code == 1 and "unknown recipe" in bad.output
    assert Path(tmp_path / "x.jsonl").exists() is False


def one_task_reply(body):
    """Every bootstrap reply gives exactly one novel task and every evolution is kept: the run the text dry-run
    estimate assumes."""
    prompt = last_user_text(body)
    rng = random.Random(hashlib.sha256(prompt.encode()).hexdigest())
    if prompt.startswith("Come up with a series"):
        return "Describe " + " ".join(rng.choice(VOCAB) for _ in range(12)) + "."
    if prompt.startswith("Carry out the task below"):
        return "Input: <noinput>\nOutput: Done."
    original = re.search(r"Original instruction:\n(.+)\n", prompt).group(1)
    return original + " Answer in exactly three sentences, citing one concrete example from " + rng.choice(VOCAB)


def test_text_dry_run_prices_every_stage_not_just_the_first_round(tmp_path, capsys):
    from instructkit.llm import Engine

    kw = dict(mode="text", num_instructions=9, batch_size=3, evolve_rounds=2)
    with LoopbackServer() as srv:
        with Engine(cfg(srv, dry_run=True)) as dry:
            funnel = run_self_instruct(output=tmp_path / "d.jsonl", llm=dry.config, engine=dry, **kw)
        assert srv.requests == [] and not (tmp_path / "d.jsonl").exists()
    estimate = dry.last_estimate
    assert funnel["stopped"] == "dry-run" and funnel["estimated rounds"] == 3
    with LoopbackServer(script=one_task_reply) as srv:
        real = run_self_instruct(output=tmp_path / "r.jsonl", llm=cfg(srv), **kw)
        sent = len(srv.requests)
        max_tokens_asked = sum(r["json"]["max_tokens"] for r in srv.requests)
    assert real["rounds"] == 3 and real["evolved"] == 18 and real["written"] == 27
    # bootstrap 3 rounds x 3 + evolve 2 x 9 + instances 9 x 3
    assert estimate.requests == sent == 9 + 18 + 27
    assert estimate.max_completion_tokens == max_tokens_asked
    assert f"dry run: {sent} requests" in capsys.readouterr().err


def test_images_dry_run_with_evolve_prices_the_evolutions_and_their_answers(tmp_path):
    from instructkit.llm import Engine

    def script(body):
        s, text = system_of(body), last_user_text(body)
        if "question below about this photo" in text or "new question about this photo" in text:
            return re.search(r"Original instruction:\n(.+)\n", text).group(1) + " Explain which details support it."
        if "Answer the question that follows" in s:
            return ("Looking at the scene, the framing, the light and the position of the main subject all point "
                    "the same way, which supports the reading that the moment was recorded on purpose.")
        return image_reply(body, [])

    kw = dict(captions=SEEDS / "coco/captions.json", instances=SEEDS / "coco/instances.json", evolve_rounds=2,
              limit=3)
    with LoopbackServer() as srv:
        with Engine(cfg(srv, dry_run=True)) as dry:
            run_self_instruct(output=tmp_path / "d.jsonl", llm=dry.config, engine=dry, **kw)
        assert srv.requests == []
    with LoopbackServer(script=script) as srv:
        real = run_self_instruct(output=tmp_path / "r.jsonl", llm=cfg(srv), **kw)
        sent = len(srv.requests)
    # 3 images x 3 recipes, then conversation + reasoning of each evolved twice, each evolution answered.
    assert real["written"] == 9 + 12 and sent == 9 + 12 + 12
    assert dry.last_estimate.requests == sent


def test_cli_a_wrong_key_is_one_clear_error_and_the_key_is_written_nowhere(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from instructkit.cli import app

    key = "sk-AUDIT-9c41e7d2b8f05a63"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.chdir(tmp_path)
    base = ["self-instruct", "--captions", str(SEEDS / "coco/captions.json"), "--instances",
            str(SEEDS / "coco/instances.json"), "--model", "loopback", "--cache", "c.sqlite", "--failed",
            "failed.jsonl", "--rejects", "rejects.jsonl", "--no-progress", "--max-retries", "0"]
    # The server echoes the key it was sent in its 401 body, as OpenAI does.
    with LoopbackServer(api_key="sk-the-right-one") as srv:
        bad = CliRunner().invoke(app, [*base, "-o", "bad.jsonl", "--base-url", srv.base_url])
        assert len(srv.requests) <= 16
    assert bad.exit_code == 1
    errors = [line for line in bad.output.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "authentication failed" in errors[0] and "HTTP 401" in errors[0]
    assert "Traceback" not in bad.output and not (tmp_path / "bad.jsonl").exists()
    with LoopbackServer(api_key=key, faults={"500": 0.3}, seed=2,
                        script=lambda body: image_reply(body, [("tabby cat", "Question: What do the captions "
                                                                             "say?\nAnswer: A cat.")])) as srv:
        good = CliRunner().invoke(app, [*base, "-o", "good.jsonl", "--base-url", srv.base_url])
    assert good.exit_code == 0, good.output
    assert (tmp_path / "failed.jsonl").read_text() and (tmp_path / "rejects.jsonl").read_text()
    assert (tmp_path / "good.jsonl").read_text()
    for path in tmp_path.rglob("*"):
        assert key.encode() not in path.read_bytes(), path
    assert key not in bad.output + good.output


def test_several_samples_of_one_image_are_not_copies_on_a_seeded_server(tmp_path):
    def seeded(body):           # a seeded server: one seed, one reply
        return CONV.replace("some objects", f"object number {body['seed']}")

    with LoopbackServer(script=seeded) as srv:
        funnel = run_self_instruct(output=tmp_path / "o.jsonl", llm=cfg(srv), recipe="conversation=3", limit=2,
                                   captions=SEEDS / "coco/captions.json", seed=11)
        seeds = [r["json"]["seed"] for r in srv.requests]
    records = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert funnel["written"] == 6 and seeds.count(11) == 2 and len(set(seeds)) == 3
    for image in ("1", "2"):          # three different samples of each image
        assert len({json.dumps(r["messages"]) for r in records if r["meta"]["image_id"] == image}) == 3
    assert [r["meta"]["sampling"]["sample_index"] for r in records] == [0, 1, 2, 0, 1, 2]


def test_vision_without_the_images_is_one_clear_error(tmp_path):
    with LoopbackServer(script=lambda body: DETAIL) as srv:
        with pytest.raises(UsageError, match="--image-root") as info:
            run_self_instruct(output=tmp_path / "o.jsonl", llm=cfg(srv), captions=SEEDS / "coco/captions.json",
                              recipe="detail", vision=True, limit=2)
        assert srv.requests == []
    assert "000000000001.jpg" in str(info.value)


def test_cli_kill_9_then_rerun_buys_nothing_twice_and_writes_what_an_uninterrupted_run_writes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    def seeded(body):
        return CONV.replace("some objects", f"object number {body['seed']}")

    def command(out, cache):
        return [sys.executable, "-m", "instructkit", "self-instruct", "--captions", str(SEEDS / "coco/captions.json"),
                "--recipe", "conversation=6", "--model", "loopback", "--base-url", srv.base_url, "--api-key", "sk-t",
                "--concurrency", "2", "--cache", str(cache), "--no-progress", "-o", str(out)]

    def bodies(entries):
        return [json.dumps([e["json"]["messages"], e["json"]["seed"]]) for e in entries]

    with LoopbackServer(script=seeded, latency=0.03) as srv:
        proc = subprocess.Popen(command(tmp_path / "out.jsonl", tmp_path / "c.sqlite"), stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(srv.requests) < 12 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)   # waiting for about a third of the 36 calls, not a test of timing
        assert proc.poll() is None, "the run finished before the kill"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        first = bodies(srv.requests)
        rerun = subprocess.run(command(tmp_path / "out.jsonl", tmp_path / "c.sqlite"), capture_output=True,
                               text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        second = bodies(srv.requests[len(first):])
        reference = run_self_instruct(output=tmp_path / "ref.jsonl", llm=cfg(srv, concurrency=2), limit=None,
                                      captions=SEEDS / "coco/captions.json", recipe="conversation=6")
    assert len(set(first) & set(second)) <= 2          # at most the two calls in flight at the kill
    assert len(set(first) | set(second)) == 36 and reference["written"] == 36
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "ref.jsonl").read_bytes()
