"""Cache modes, cache keys, and the API key never leaving the process."""

from __future__ import annotations

import json
import logging
import sys

from llm_helpers import SECRET, config, read_jsonl, requests

from instructkit.llm import Engine, Request
from instructkit.llm.batch import complete_file
from instructkit.llm.cache import cache_key
from instructkit.testing.server import LoopbackServer


def test_rerun_is_free_no_cache_calls_again_cache_only_never_calls(tmp_path):
    with LoopbackServer() as srv:
        cfg = config(srv.base_url, tmp_path)
        with Engine(cfg) as engine:
            first = [r.text for r in engine.run(requests(20))]
        assert len(srv.requests) == 20
        with Engine(cfg) as engine:
            again = list(engine.run(requests(20)))
        assert len(srv.requests) == 20 and engine.stats.cache_hits == 20 and engine.stats.requests == 0
        assert [r.text for r in again] == first and all(r.cached for r in again)
        with Engine(config(srv.base_url, tmp_path, cache_mode="off")) as engine:
            list(engine.run(requests(20)))
        assert len(srv.requests) == 40
        only = config(srv.base_url, tmp_path, cache_mode="only")
        with Engine(only) as engine:
            replay = list(engine.run(requests(25)))
        assert len(srv.requests) == 40
    assert [r.text for r in replay[:20]] == first
    assert [(r.ok, r.reason) for r in replay[20:]] == [(False, "cache-miss")] * 5
    assert [f["key"] for f in read_jsonl(tmp_path / "failed.jsonl")] == [f"q{i}" for i in range(20, 25)]


def test_cache_key_covers_model_sampling_seed_sample_and_attempt():
    base = Request(key="k", messages=[{"role": "user", "content": "hi"}])
    keys = {
        cache_key("m", base, 0),
        cache_key("other", base, 0),
        cache_key("m", base, 1),
        cache_key("m", Request(key="k", messages=base.messages, temperature=0.1), 0),
        cache_key("m", Request(key="k", messages=base.messages, seed=7), 0),
        cache_key("m", Request(key="k", messages=base.messages, sample_index=1), 0),
        cache_key("m", Request(key="k", messages=base.messages, max_tokens=5), 0),
        cache_key("m", Request(key="k", messages=[{"role": "user", "content": "hi!"}]), 0),
    }
    assert len(keys) == 8
    # The row key and meta are bookkeeping, not part of what the model sees.
    assert cache_key("m", base, 0) == cache_key("m", Request(key="other", messages=base.messages, meta={"a": 1}), 0)


def test_api_key_appears_in_no_output_cache_failed_rows_or_logs(tmp_path, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": i, "prompt": f"p{i}"}) + "\n" for i in range(30)))

    # A hostile server that echoes the key in its error bodies; the engine must scrub it.
    def script(body):
        if body["messages"][0]["content"] in ("p3", "p4"):
            return {"status": 400, "error": f"invalid key {SECRET}"}
        return None

    with LoopbackServer(script=script, faults={"500": 0.2, "429": 0.1}, seed=5) as srv:
        cfg = config(srv.base_url, tmp_path, max_retries=1)
        out = tmp_path / "out.jsonl"
        summary = complete_file(prompts, out, cfg, defaults={"max_tokens": 16})
        print(summary["summary"], file=sys.stderr)
        print(repr(cfg))
        assert all(r["headers"]["authorization"] == f"Bearer {SECRET}" for r in srv.requests)
    failed = read_jsonl(tmp_path / "failed.jsonl")
    assert {"3", "4"} <= {f["key"] for f in failed}
    captured = capfd.readouterr()
    places = {"output": out.read_bytes(), "failed": (tmp_path / "failed.jsonl").read_bytes(),
              "stdout/stderr": (captured.out + captured.err).encode(), "log": caplog.text.encode(),
              "summary": json.dumps(summary).encode()}
    for name in ("cache.sqlite", "cache.sqlite-wal"):
        if (tmp_path / name).exists():
            places[name] = (tmp_path / name).read_bytes()
    assert len(places["cache.sqlite"]) + len(places.get("cache.sqlite-wal", b"")) > 0
    for name, blob in places.items():
        assert SECRET.encode() not in blob, name


def test_failed_rows_of_several_engines_in_one_process_accumulate(tmp_path):
    with LoopbackServer(script=lambda body: {"status": 400, "error": "no"}) as srv:
        cfg = config(srv.base_url, tmp_path, failed_path=tmp_path / "fails" / "f.jsonl")
        for prefix in ("a", "b"):
            with Engine(cfg) as engine:
                assert [r.reason for r in engine.run(requests(2, prefix=prefix))] == ["http-400"] * 2
    assert [f["key"] for f in read_jsonl(tmp_path / "fails" / "f.jsonl")] == ["a0", "a1", "b0", "b1"]
