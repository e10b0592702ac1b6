"""The shipped recipes, end to end: quickstart builds the data and trains the tiny model from a fresh
checkout; a rerun does nothing; a changed option reruns only what it affects; two builds are identical.
llava15-mini runs its self-instruct step through the real openai client against the loopback server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from instructkit.pipeline import run_recipe
from instructkit.resources import recipes_dir
from instructkit.testing.server import LoopbackServer

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"


def statuses(result: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in result["steps"]}


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".instructkit" not in p.parts}


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "instructkit", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_quickstart_end_to_end_rerun_change_and_reproducibility(tmp_path):
    # 1. A fresh checkout: the command as the README gives it, from an empty folder.
    first = tmp_path / "one"
    first.mkdir()
    proc = cli(["run", str(QUICKSTART)], first)
    assert proc.returncode == 0, proc.stderr[-3000:]
    build = first / "build" / "quickstart"
    vqa = lines(build / "data" / "vqa.jsonl")
    assert len(vqa) == 6                                        # the sample's 6 images, questions merged
    assert all(len(r["messages"]) > 2 for r in vqa)
    assert all(m["content"].endswith("Answer the question using a single word or phrase.")
               for r in vqa for m in r["messages"] if m["role"] == "user")
    mixed = lines(build / "data" / "mix.jsonl")
    assert Counter(bool(r["images"]) for r in mixed) == {True: 6, False: 18}
    assert [r["id"] for r in mixed] != [r["id"] for r in vqa + lines(build / "data" / "text.jsonl")]
    model = build / "models" / "quickstart"
    assert (model / "model.safetensors").is_file() and (model / "config.json").is_file()
    log = [json.loads(x) for x in (model / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3, 4]
    manifest = json.loads((build / "instructkit.lock.json").read_text())
    steps = {s["name"]: s for s in manifest["steps"]}
    assert list(steps) == ["vqa", "text", "mix", "tiny-model", "train"]
    assert steps["train"]["funnel"]["steps"] == 4 and steps["train"]["funnel"]["train_rows"] == 24
    assert steps["vqa"]["funnel"]["read"] == 29 and steps["vqa"]["funnel"]["written"] == 6
    assert steps["train"]["inputs"]["models/tiny-llava"] == steps["tiny-model"]["output_sha256"]
    assert set(manifest["inputs"]) == {"${seeds}/vqa/questions.json", "${seeds}/vqa/annotations.json",
                                       "${seeds}/text/sharegpt.json"}

    # 2. Rerun with nothing changed: no step runs, nothing is rewritten.
    before = {p: p.stat().st_mtime_ns for p in build.rglob("*") if p.is_file()}
    again = cli(["run", str(QUICKSTART)], first)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "done: 0 step(s) ran, 5 unchanged" in again.stderr
    assert "running" not in again.stderr
    assert {p: p.stat().st_mtime_ns for p in build.rglob("*") if p.is_file()} == before

    # 3. A second build elsewhere: identical manifest and outputs (the training log holds wall-clock
    #    times; the training summary names its own folder).
    second = tmp_path / "two" / "build"
    res = run_recipe(QUICKSTART, workdir=second)
    assert set(statuses(res).values()) == {"ran"}
    assert (second / "instructkit.lock.json").read_bytes() == (build / "instructkit.lock.json").read_bytes()
    a, b = files(build), files(second)
    assert a.keys() == b.keys()
    for name in a:
        if name.endswith("train_log.jsonl"):
            continue
        left = a[name].replace(str(build.resolve()).encode(), b"WORKDIR")
        right = b[name].replace(str(second.resolve()).encode(), b"WORKDIR")
        assert left == right, name

    # 4. Change one step's option: that step and those after it rerun, the others do not.
    res = run_recipe(QUICKSTART, workdir=second, sets=["mix.seed=1"])
    assert statuses(res) == {"vqa": "skipped", "text": "skipped", "mix": "ran", "tiny-model": "skipped",
                             "train": "ran"}
    assert (second / "data" / "mix.jsonl").read_bytes() != a["data/mix.jsonl"]
    assert (second / "data" / "vqa.jsonl").read_bytes() == a["data/vqa.jsonl"]


QA = ("Question:\nWhat is the main thing in the picture?\n===\nAnswer:\nThe main thing is shown clearly in the "
      "middle of the photo, and the light, the colours and what surrounds it make plain what it is doing there.")
DETAIL = " ".join(["The photo shows a single clear subject in the middle of the frame."] * 5)


def reply(body: dict) -> str:
    # Conversation and reasoning prompts carry Question/===/Answer demonstrations; detail prompts do not.
    text = " ".join(str(m.get("content")) for m in body["messages"])
    return QA if "===" in text else DETAIL


def test_llava15_mini_builds_the_mixture_against_an_endpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    work = tmp_path / "w"
    with LoopbackServer(script=reply) as srv:
        res = run_recipe(recipes_dir() / "llava15-mini.yaml", workdir=work, until="mix",
                         sets=[f"base_url={srv.base_url}", "model=loopback"])
        calls = len(srv.requests)
    assert statuses(res) == {"vqa": "ran", "llava-instruct": "ran", "text": "ran", "mix": "ran"}
    assert calls == 18                                   # 6 images x (conversation, detail, reasoning)
    rows = lines(work / "data" / "llava15-mini.jsonl")
    assert Counter(r["source"] for r in rows) == {"vqav2": 6, "self-instruct": 18, "text": 18} or \
        len(rows) == 6 + 18 + 18
    assert Counter(r["task"] for r in rows if r["source"] == "self-instruct") == \
        {"conversation": 6, "detail": 6, "reasoning": 6}
    short = [r for r in rows if r["task"] == "vqa"]
    assert len(short) == 6 and all(len(r["messages"]) >= 4 for r in short)
    manifest = json.loads((work / "instructkit.lock.json").read_text())
    si = next(s for s in manifest["steps"] if s["name"] == "llava-instruct")
    assert si["options"]["model"] == "loopback" and si["funnel"]["written"] == 18
    assert "base-url" not in si["options"]               # where the endpoint lives is not what it made

    # A rerun against a restarted server (a new port) skips every step and calls nothing.
    with LoopbackServer(script=reply) as srv2:
        res = run_recipe(recipes_dir() / "llava15-mini.yaml", workdir=work, until="mix",
                         sets=[f"base_url={srv2.base_url}", "model=loopback"])
        assert len(srv2.requests) == 0
    assert set(statuses(res).values()) == {"skipped"}


@pytest.mark.parametrize("name", ["quickstart", "llava15-mini"])
def test_shipped_recipes_plan_cleanly(tmp_path, name):
    res = run_recipe(name, workdir=tmp_path / "w", plan_only=True)
    assert res["steps"] and {s["status"] for s in res["steps"]} == {"would-run"}
    assert not (tmp_path / "w").exists()
