"""kill -9 half way through a batch job, rerun: same output as an uninterrupted run, no repeated paid call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from llm_helpers import SECRET, config, read_jsonl

from instructkit.llm.batch import complete_file
from instructkit.testing.server import LoopbackServer, last_user_text

N = 160
CONCURRENCY = 8


def _job(prompts, out, cache, url):
    return [sys.executable, "-m", "instructkit.llm.batch", str(prompts), str(out), "--model", "loopback",
            "--base-url", url, "--cache", str(cache), "--concurrency", str(CONCURRENCY), "--api-key", SECRET,
            "--max-tokens", "32"]


def _lines(path):
    try:
        return path.read_text(encoding="utf-8").count("\n")
    except FileNotFoundError:
        return 0


def test_kill_9_half_way_then_rerun_equals_an_uninterrupted_run(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"r{i}", "prompt": f"prompt {i}"}) + "\n" for i in range(N)))
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache.sqlite"
    partial = out.with_name(out.name + ".partial")
    with LoopbackServer(latency=0.01) as srv:
        proc = subprocess.Popen(_job(prompts, out, cache, srv.base_url), stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while _lines(partial) < N // 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)   # waiting for the half-way mark, not a test of timing
        assert proc.poll() is None, "the job finished before the half-way mark"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        assert not out.exists()   # a killed run leaves no file under the real name
        finished = {row["id"] for row in read_jsonl(partial)}
        assert N // 3 <= len(finished) < N
        first_run = [last_user_text(r["json"]) for r in srv.requests]
        mark = len(srv.requests)

        rerun = subprocess.run(_job(prompts, out, cache, srv.base_url), capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        second_run = [last_user_text(r["json"]) for r in srv.requests[mark:]]
        done_before = {f"prompt {row_id[1:]}" for row_id in finished}
        # No row finished before the kill was asked again; at most the calls in flight at the kill were.
        assert not done_before & set(second_run)
        assert len(set(first_run) & set(second_run)) <= CONCURRENCY
        assert len(set(first_run) | set(second_run)) == N

        reference = tmp_path / "reference.jsonl"
        complete_file(prompts, reference, config(srv.base_url, None, concurrency=CONCURRENCY),
                      defaults={"max_tokens": 32})
    assert out.read_bytes() == reference.read_bytes()
    assert [row["id"] for row in read_jsonl(out)] == [f"r{i}" for i in range(N)]
    assert not partial.exists()
