"""The loopback server speaks real HTTP to the real openai client: routes, replies, faults, the log."""

from __future__ import annotations

import subprocess
import sys

import openai
import pytest
from openai import OpenAI

from instructkit.testing.server import LoopbackServer


def _client(srv, **kw):
    return OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0, **kw)


def _ask(client, text, **kw):
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}], **kw)


def test_models_and_default_echo_with_usage():
    with LoopbackServer(models=("a", "b")) as srv, _client(srv) as client:
        assert [m.id for m in client.models.list()] == ["a", "b"]
        reply = _ask(client, "hello there")
        assert reply.choices[0].message.content == "echo: hello there"
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
        assert srv.requests[-1]["headers"]["authorization"] == "Bearer sk-test"
        assert srv.requests[-1]["json"]["messages"][0]["content"] == "hello there"


def test_rules_script_and_callable_replies():
    with LoopbackServer(rules=[(r"capital", "Paris"), (r"\d+", lambda body: "a number")]) as srv, \
            _client(srv) as client:
        assert _ask(client, "the capital of France?").choices[0].message.content == "Paris"
        assert _ask(client, "pick 7").choices[0].message.content == "a number"
        assert _ask(client, "other").choices[0].message.content == "echo: other"
    with LoopbackServer(script=["one", {"content": "two", "finish_reason": "length"}]) as srv, \
            _client(srv) as client:
        assert _ask(client, "x").choices[0].message.content == "one"
        second = _ask(client, "x").choices[0]
        assert (second.message.content, second.finish_reason) == ("two", "length")
        assert _ask(client, "x").choices[0].message.content == "echo: x"   # script used up: default
    with LoopbackServer(script=lambda body: body["model"].upper()) as srv, _client(srv) as client:
        assert _ask(client, "x").choices[0].message.content == "M"


def test_max_tokens_truncates_with_length_and_n_choices():
    with LoopbackServer(script=lambda body: "word " * 50) as srv, _client(srv) as client:
        reply = _ask(client, "x", max_tokens=5, n=3)
        assert len(reply.choices) == 3
        assert all(c.finish_reason == "length" for c in reply.choices)
        assert len(reply.choices[0].message.content) <= 20


@pytest.mark.parametrize("fault,error", [("429", openai.RateLimitError), ("500", openai.InternalServerError),
                                         ("drop", openai.APIConnectionError),
                                         ("truncated", openai.APIConnectionError),
                                         ("timeout", openai.APITimeoutError)])
def test_each_fault_reaches_the_client_as_its_error(fault, error):
    with LoopbackServer(fault_script=[fault], hang=2.0, retry_after=0.25) as srv, \
            _client(srv, timeout=0.3) as client:
        with pytest.raises(error) as info:
            _ask(client, "x")
        if fault == "429":
            assert info.value.response.headers["retry-after-ms"] == "250"
        assert _ask(client, "x").choices[0].message.content == "echo: x"   # next one is clean
        assert srv.counts[fault] == 1 and srv.counts["ok"] == 1


def test_empty_fault_and_scripted_status():
    with LoopbackServer(fault_script=["empty"]) as srv, _client(srv) as client:
        assert _ask(client, "x").choices[0].message.content == ""
    with LoopbackServer(script=[{"status": 400, "error": "nope"}]) as srv, _client(srv) as client:
        with pytest.raises(openai.BadRequestError, match="nope"):
            _ask(client, "x")


def test_fault_rates_are_deterministic_per_body_and_sighting():
    def decisions(seed):
        srv = LoopbackServer(faults={"429": 0.3, "500": 0.2}, seed=seed)
        return [srv._fault_for({}, f"body{i}".encode(), seen, 0) for i in range(200) for seen in range(2)]

    first = decisions(1)
    assert first == decisions(1) and first != decisions(2)
    assert 0.2 < first.count("429") / len(first) < 0.4
    with pytest.raises(ValueError, match="unknown fault"):
        LoopbackServer(faults={"teapot": 0.1})


def test_runs_as_a_module_and_prints_its_url():
    proc = subprocess.Popen([sys.executable, "-m", "instructkit.testing.server", "--port", "0",
                             "--rule", "ping=pong"], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with OpenAI(base_url=url, api_key="k", max_retries=0) as client:
            assert _ask(client, "ping?").choices[0].message.content == "pong"
    finally:
        proc.terminate()
        proc.wait(10)


def test_subprocess_server_exposes_its_log_and_counts():
    from instructkit.testing.server import SubprocessServer

    with SubprocessServer(faults={"500": 1.0}, log=True) as srv, _client(srv) as client:
        with pytest.raises(openai.InternalServerError):
            _ask(client, "hi")
        assert srv.stats()["counts"] == {"500": 1}
        (entry,) = srv.requests
        assert entry["json"]["messages"][0]["content"] == "hi" and entry["fault"] == "500"


def test_module_flags_file_rules_and_a_required_key(tmp_path):
    reply = tmp_path / "reply.txt"
    reply.write_text("Question:\nWhat is it?\n===\nAnswer:\nA cat.\n")
    proc = subprocess.Popen([sys.executable, "-m", "instructkit.testing.server", "--port", "0", "--api-key",
                             "sk-right", "--rule", f"cat=@{reply}"], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        with OpenAI(base_url=url, api_key="sk-right", max_retries=0) as client:
            assert _ask(client, "a cat").choices[0].message.content == reply.read_text()
        with OpenAI(base_url=url, api_key="sk-wrong", max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
                _ask(client, "a cat")
        # A port that is taken is an error, not a server that never comes up.
        taken = subprocess.run([sys.executable, "-m", "instructkit.testing.server", "--port", url.split(":")[-1]
                                .split("/")[0]], capture_output=True, text=True, timeout=20)
        assert taken.returncode == 1 and "cannot listen" in taken.stderr and "Traceback" not in taken.stderr
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("flags, message", [
    (["--fault", "teapot=0.1"], "unknown fault 'teapot'"),
    (["--fault", "429=lots"], "the rate must be a number"),
    (["--rule", "(unclosed=x"], "unterminated subpattern"),
    (["--rule", "no-equals-sign"], "expected REGEX=REPLY"),
])
def test_module_bad_flags_are_usage_errors_not_tracebacks(flags, message):
    done = subprocess.run([sys.executable, "-m", "instructkit.testing.server", "--port", "0", *flags],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
