"""The engine through the real openai client to the loopback server: faults, order, parse retries, images."""

from __future__ import annotations

import base64
import itertools

from llm_helpers import SECRET, config, read_jsonl, requests, user_texts

from instructkit.llm import Engine, ParseRejected, Request
from instructkit.testing.server import LoopbackServer

FAULT_RATES = {"429": 0.08, "500": 0.08, "timeout": 0.04, "drop": 0.06, "truncated": 0.06, "empty": 0.06}


def test_every_fault_class_survived_and_counts_add_up(tmp_path):
    n = 150
    with LoopbackServer(faults=FAULT_RATES, hang=2.0, retry_after=0.01, seed=3) as srv:
        cfg = config(srv.base_url, tmp_path, concurrency=16, timeout=0.4)
        with Engine(cfg) as engine:
            results = list(engine.run(requests(n)))
        stats = engine.stats
        assert [r.request.key for r in results] == [f"q{i}" for i in range(n)]
        assert all(r.ok and r.text == f"echo: q{i}" for i, r in enumerate(results))
        # Every call the server saw is one the engine counted, class by class.
        counts = srv.counts
        for fault in FAULT_RATES:
            assert counts.get(fault, 0) > 0, fault
        assert stats.http_429 == counts["429"] and stats.http_5xx == counts["500"]
        assert stats.timeouts == counts["timeout"] and stats.empty_replies == counts["empty"]
        assert stats.connection_errors == counts["drop"] + counts["truncated"]
        assert stats.requests == sum(counts.values()) == n + stats.retries
        assert stats.rows == stats.rows_ok == n and read_jsonl(tmp_path / "failed.jsonl") == []


def test_rows_that_exhaust_retries_go_to_the_failed_file(tmp_path):
    n = 60
    with LoopbackServer(faults={"500": 0.5, "empty": 0.2}, seed=1) as srv:
        with Engine(config(srv.base_url, tmp_path, max_retries=1)) as engine:
            results = list(engine.run(requests(n)))
    failed = read_jsonl(tmp_path / "failed.jsonl")
    assert len(results) == n and all(r.text or not r.ok for r in results)
    bad = [r for r in results if not r.ok]
    assert bad and len(bad) == len(failed) == engine.stats.rows_failed
    assert engine.stats.rows_ok + engine.stats.rows_failed == n
    assert {f["key"] for f in failed} == {r.request.key for r in bad}
    assert {f["reason"] for f in failed} <= {"http-5xx", "empty"}
    assert all(r.text is None and r.error for r in bad)
    assert sum(engine.stats.failed_by_reason.values()) == len(bad)


def test_results_keep_input_order_and_input_is_read_lazily():
    consumed = itertools.count()

    def source():
        for req in requests(400):
            next(consumed)
            yield req

    # Latency varies by row so replies come back out of order.
    latency = lambda body: 0.002 * (hash(body["messages"][0]["content"]) % 5)  # noqa: E731
    with LoopbackServer(latency=latency) as srv:
        with Engine(config(srv.base_url, concurrency=8, reorder_window=32)) as engine:
            it = engine.run(source())
            first = next(it)
            read_at_first = next(consumed)
            rest = list(it)
    assert first.request.key == "q0" and [r.request.key for r in rest] == [f"q{i}" for i in range(1, 400)]
    assert read_at_first <= 40   # bounded by the reorder window, not the input size


def test_parse_rejects_ask_again_and_a_rerun_replays_the_same_sequence(tmp_path):
    def parse(text, finish):
        if text != "good":
            raise ParseRejected("not-good")
        return text.upper()

    with LoopbackServer() as srv:
        # The first sight of each body gets "bad", later ones "good" (the server log counts sightings).
        srv.script = lambda body: ("bad" if "never" in body["messages"][0]["content"]
                                   or sum(1 for r in srv.requests if r["json"] == body) <= 1 else "good")
        cfg = config(srv.base_url, tmp_path)
        reqs = requests(5) + [Request(key="x", messages=[{"role": "user", "content": "never good"}])]
        with Engine(cfg) as engine:
            first = list(engine.run(reqs, parse=parse, max_parse_retries=2))
        sent = len(srv.requests)
        with Engine(cfg) as engine:
            again = list(engine.run(reqs, parse=parse, max_parse_retries=2))
        assert len(srv.requests) == sent   # the rerun is served by the cache, rejected replies included
    assert [r.parsed for r in first[:5]] == ["GOOD"] * 5 and all(r.attempts == 2 for r in first[:5])
    assert not first[5].ok and first[5].reason == "parse:not-good" and first[5].attempts == 3
    assert sent == 5 * 2 + 3 and engine.stats.parse_rejects == 5 + 3
    assert [(r.ok, r.parsed, r.reason) for r in again] == [(r.ok, r.parsed, r.reason) for r in first]
    assert all(r.cached for r in again[:5])
    # Two engines in one process append to the same failed-rows file: one line each.
    assert [f["reason"] for f in read_jsonl(tmp_path / "failed.jsonl")] == ["parse:not-good"] * 2


def test_length_finish_is_ok_unless_the_parser_rejects_it():
    with LoopbackServer(script=lambda body: "word " * 100) as srv:
        with Engine(config(srv.base_url)) as engine:
            (res,) = engine.run(requests(1, max_tokens=4))
            assert res.ok and res.finish_reason == "length"

            def strict(text, finish):
                if finish == "length":
                    raise ParseRejected("truncated")
                return text

            (res,) = engine.run(requests(1, prefix="z", max_tokens=4), parse=strict, max_parse_retries=1)
            assert not res.ok and res.reason == "parse:truncated"


def test_images_local_as_data_url_remote_as_url_and_cache_by_content(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"fake-image-bytes"
    img = tmp_path / "a.png"
    img.write_bytes(png)

    def vision(path):
        return Request(key="v", messages=[{"role": "user", "content": [
            {"type": "text", "text": "describe"}, {"type": "image", "path": str(path)},
            {"type": "image", "path": "https://example.org/cat.jpg"}]}])

    with LoopbackServer() as srv:
        cfg = config(srv.base_url, tmp_path)
        with Engine(cfg) as engine:
            (res,) = engine.run([vision(img)])
        assert res.ok and res.text == "echo: describe"
        parts = srv.requests[0]["json"]["messages"][0]["content"]
        assert parts[1] == {"type": "image_url", "image_url": {
            "url": "data:image/png;base64," + base64.b64encode(png).decode()}}
        assert parts[2] == {"type": "image_url", "image_url": {"url": "https://example.org/cat.jpg"}}
        moved = tmp_path / "moved.png"
        img.rename(moved)
        with Engine(cfg) as engine:
            (res,) = engine.run([vision(moved)])   # same bytes elsewhere: a cache hit
        assert res.cached and len(srv.requests) == 1
        moved.write_bytes(png + b"edited")
        with Engine(cfg) as engine:
            (res,) = engine.run([vision(moved)])   # edited image: asked again
            (missing,) = engine.run([vision(tmp_path / "nope.png")])
        assert not res.cached and len(srv.requests) == 2
        assert not missing.ok and missing.reason == "image-missing"
        assert user_texts(srv) == ["describe", "describe"]


def test_non_retryable_client_error_fails_the_row_at_once(tmp_path):
    with LoopbackServer(script=lambda b: {"status": 400, "error": "bad field"}
                        if b["messages"][0]["content"] == "q0" else None) as srv:
        with Engine(config(srv.base_url, tmp_path)) as engine:
            bad, good = engine.run(requests(2))
        assert len(srv.requests) == 2
    assert not bad.ok and bad.reason == "http-400" and "bad field" in bad.error
    assert good.ok


def test_sampling_parameters_reach_the_server_and_n_gives_several_texts():
    with LoopbackServer(script=lambda body: "same") as srv:
        with Engine(config(srv.base_url)) as engine:
            (res,) = engine.run([Request(key="k", messages=[{"role": "user", "content": "x"}], temperature=0.3,
                                         top_p=0.9, max_tokens=12, seed=42, stop=["\n\n"], n=3,
                                         response_format={"type": "json_object"})])
        sent = srv.requests[0]["json"]
    assert res.ok and res.texts == ["same"] * 3 and res.text == "same"
    assert {k: sent[k] for k in ("model", "temperature", "top_p", "max_tokens", "seed", "stop", "n",
                                 "response_format")} == {
        "model": "loopback", "temperature": 0.3, "top_p": 0.9, "max_tokens": 12, "seed": 42, "stop": ["\n\n"],
        "n": 3, "response_format": {"type": "json_object"}}


def test_bad_credentials_stop_the_run_with_a_clean_error():
    import pytest

    from instructkit.errors import LLMError

    with LoopbackServer(script=lambda body: {"status": 401, "error": "wrong key " + SECRET}) as srv:
        with Engine(config(srv.base_url)) as engine:
            with pytest.raises(LLMError, match="authentication failed") as info:
                list(engine.run(requests(3)))
    assert SECRET not in str(info.value)


def test_a_caller_that_stops_early_leaves_nothing_running(tmp_path):
    with LoopbackServer(latency=0.05) as srv:
        with Engine(config(srv.base_url, tmp_path, concurrency=4)) as engine:
            for res in engine.run(requests(100)):
                assert res.ok
                break
        sent = len(srv.requests)
        assert sent < 100 and engine._loop is None
    # Whatever was paid for before the stop is in the cache for the next run.
    with LoopbackServer() as again:
        with Engine(config(again.base_url, tmp_path, concurrency=4)) as engine:
            assert all(r.ok for r in engine.run(requests(100)))
        assert engine.stats.cache_hits >= 1 and len(again.requests) + engine.stats.cache_hits == 100


def test_a_server_that_is_not_there_is_one_clear_error_not_n_failed_rows(tmp_path):
    import socket

    import pytest

    from instructkit.errors import LLMError

    with socket.socket() as sock:          # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Engine(config(f"http://127.0.0.1:{port}/v1", tmp_path, max_retries=1)) as engine:
        with pytest.raises(LLMError, match="is the server running"):
            list(engine.run(requests(5)))


def test_a_seeded_ask_again_and_each_sample_reach_the_server_with_their_own_seed():
    # A seeded backend (vLLM, llama.cpp, OpenAI's best effort) gives the same reply to the same seed: asking
    # again with the seed that gave a rejected reply would only buy that reply again, and n samples of one
    # prompt would be n copies.
    def seeded(body):
        return "bad" if body["seed"] == 5 else f"good {body['seed']}"

    def parse(text, finish):
        if text == "bad":
            raise ParseRejected("bad")
        return text

    msgs = [{"role": "user", "content": "same prompt"}]
    with LoopbackServer(script=seeded) as srv:
        with Engine(config(srv.base_url)) as engine:
            (res,) = engine.run([Request(key="r", messages=msgs, seed=5)], parse=parse, max_parse_retries=2)
            samples = list(engine.run([Request(key=f"s{k}", messages=msgs, seed=9, sample_index=k)
                                       for k in range(4)]))
        seeds = [r["json"]["seed"] for r in srv.requests]
    assert res.ok and res.attempts == 2 and seeds[0] == 5 and seeds[1] != 5
    assert seeds[2] == 9                                 # the first sample sends the seed it was given
    assert len(set(seeds[2:])) == 4 and len({r.text for r in samples}) == 4


def test_an_exhausted_quota_is_one_clear_error_not_a_retry_storm(tmp_path):
    import pytest

    from instructkit.errors import LLMError

    # OpenAI's answer when the account has no credit left: a 429 that no waiting will cure.
    quota = {"status": 429, "error": {"message": "You exceeded your current quota, please check your plan and "
                                                 "billing details.", "type": "insufficient_quota",
                                      "code": "insufficient_quota"}}
    with LoopbackServer(script=lambda body: quota) as srv:
        with Engine(config(srv.base_url, tmp_path, concurrency=2)) as engine:
            with pytest.raises(LLMError, match="quota") as info:
                list(engine.run(requests(20)))
        assert len(srv.requests) <= 2          # the calls in flight, none asked again
    assert "billing" in str(info.value) and SECRET not in str(info.value)


def test_a_parameter_the_model_refuses_is_one_clear_error_not_n_failed_rows(tmp_path):
    import pytest

    from instructkit.errors import LLMError

    # What OpenAI's reasoning models answer to max_tokens: every row would fail the same way.
    refused = {"status": 400, "error": {
        "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                   f"'max_completion_tokens' instead. (key {SECRET})", "type": "invalid_request_error", "param": "max_tokens",
        "code": "unsupported_parameter"}}
    with LoopbackServer(script=lambda body: refused) as srv:
        with Engine(config(srv.base_url, tmp_path, concurrency=2)) as engine:
            with pytest.raises(LLMError, match="Unsupported parameter: 'max_tokens'") as info:
                list(engine.run(requests(20)))
        assert len(srv.requests) <= 2
    assert SECRET not in str(info.value) and "(key ***)" in str(info.value)
    assert read_jsonl(tmp_path / "failed.jsonl") == []
