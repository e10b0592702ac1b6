"""--dry-run calls nothing and prices the run; --max-cost stops before the spend passes the cap."""

from __future__ import annotations

import json
import subprocess
import sys

from llm_helpers import config, requests

from instructkit.llm import Engine
from instructkit.testing.server import LoopbackServer

PRICES = "models:\n  loopback: {input: 1000.0, cached_input: 500.0, output: 2000.0}\n"


def test_dry_run_sends_nothing_and_estimates_cost(tmp_path, capsys):
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    with LoopbackServer() as srv:
        cfg = config(srv.base_url, tmp_path, prices_path=prices, dry_run=True)
        with Engine(cfg) as engine:
            assert list(engine.run(requests(4, max_tokens=50))) == []
            assert list(engine.run(requests(6, prefix="b", max_tokens=50))) == []   # jobs run batch by batch
            est = engine.last_estimate
            assert capsys.readouterr().err == ""      # one total, printed when the engine closes
        assert srv.requests == [] and engine.stopped == "dry-run"
    assert est.rows == 10 and est.prompt_tokens > 10 and est.max_completion_tokens == 500
    assert est.max_cost == (est.prompt_tokens * 1000 + 500 * 2000) / 1e6
    err = capsys.readouterr().err
    assert err.count("dry run: 10 requests") == 1 and "estimated cost $" in err


def test_estimate_counts_images_and_reports_missing_ones(tmp_path):
    from instructkit.llm import Request
    from instructkit.llm.accounting import IMAGE_TOKENS

    (tmp_path / "here.png").write_bytes(b"png")
    text_only = Request(key="t", messages=[{"role": "user", "content": [{"type": "text", "text": "look"}]}])
    with_images = Request(key="i", messages=[{"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image", "path": str(tmp_path / "here.png")},
        {"type": "image", "path": str(tmp_path / "gone.png")}]}])
    engine = Engine(config("http://127.0.0.1:9/v1"))
    base, both = engine.estimate([text_only]), engine.estimate([with_images])
    assert both.prompt_tokens - base.prompt_tokens == 2 * IMAGE_TOKENS
    assert both.missing_images == 1 and "1 local images missing" in both.summary()


def test_dry_run_from_the_batch_command(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"hello {i}"}) + "\n" for i in range(4)))
    with LoopbackServer() as srv:
        proc = subprocess.run([sys.executable, "-m", "instructkit.llm.batch", str(prompts), str(tmp_path / "o"),
                               "--model", "gpt-4o-mini", "--base-url", srv.base_url, "--dry-run",
                               "--cache", str(tmp_path / "c.sqlite")], capture_output=True, text=True, timeout=60)
        assert srv.requests == []
    assert proc.returncode == 0, proc.stderr
    assert "dry run: 4 requests to gpt-4o-mini" in proc.stderr and "estimated cost $" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_max_cost_stops_before_exceeding_and_the_rest_resumes(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    n = 40
    with LoopbackServer(latency=0.005) as srv:
        probe = config(srv.base_url, None, prices_path=prices)
        with Engine(probe) as engine:
            list(engine.run(requests(1, max_tokens=8)))
            one = engine.stats.cost
        srv.requests.clear()
        cap = one * n / 2
        cfg = config(srv.base_url, tmp_path, prices_path=prices, max_cost=cap, concurrency=4)
        with Engine(cfg) as engine:
            done = list(engine.run(requests(n, max_tokens=8)))
        assert engine.stopped == "max-cost"
        assert engine.stats.cost <= cap
        assert 0 < len(done) < n and all(r.ok for r in done)
        assert [r.request.key for r in done] == [f"q{i}" for i in range(len(done))]
        first_run = len(srv.requests)
        assert first_run == engine.stats.requests
        with Engine(config(srv.base_url, tmp_path, prices_path=prices, max_cost=one * n * 10)) as engine:
            rest = list(engine.run(requests(n, max_tokens=8)))
        assert engine.stopped is None and len(rest) == n
        # Everything paid for in the first run was replayed, not bought again.
        assert engine.stats.cache_hits == first_run
        assert len(srv.requests) == n


def test_max_cost_without_a_price_is_refused(tmp_path):
    import pytest

    from instructkit.errors import LLMError

    with pytest.raises(LLMError, match="needs a price"):
        Engine(config("http://127.0.0.1:9/v1", model="unpriced-model", max_cost=1.0))
