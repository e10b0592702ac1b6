"""A real OpenAI-compatible HTTP server on 127.0.0.1, for tests, benchmarks and users' dry runs.

Stdlib only (asyncio, HTTP/1.1 with keep-alive), so it is cheap enough to carry thousands of requests per
second and to run inside a test process. It serves ``POST /v1/chat/completions`` and ``GET /v1/models``.

    with LoopbackServer(rules=[(r"capital", "Paris")], latency=0.05, faults={"429": 0.1}) as srv:
        client = OpenAI(base_url=srv.base_url, api_key="sk-test")
        ...
        srv.requests          # the request log: method, path, headers, json, fault, status

Replies come from, in order: the fault decision, ``script`` (a list consumed in arrival order, or a
callable(request_json) -> str | dict), ``rules`` (regex on the last user message -> reply), and the default
``"echo: <last user message>"``. A dict reply may set ``content``, ``finish_reason`` and ``usage``, or
``status`` (and ``error``) to answer with that HTTP error instead.

Faults, decided per request: ``429`` (with ``retry-after`` / ``retry-after-ms``), ``500``, ``timeout``
(hold the connection silently for ``hang`` seconds), ``drop`` (close without a response), ``truncated``
(promise more body bytes than sent, then close), ``empty`` (200 with empty content). ``faults`` gives a rate
per class; the draw is a hash of (seed, request body, how many times that body was seen before), so it is
deterministic whatever the arrival order. ``fault_script`` (a list by arrival index, or a
callable(request_json, times_seen) -> fault | None) scripts them exactly. ``max_inflight`` answers 429 to
requests beyond that many in flight: a real capacity limit, for testing adaptive clients.

Run standalone: ``python -m instructkit.testing.server --port 8000 --latency 0.05 --fault 429=0.1``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

FAULTS = ("429", "500", "timeout", "drop", "truncated", "empty")

Reply = str | dict
Script = list | Callable[[dict], Reply]
FaultScript = list | Callable[[dict, int], str | None]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def count_tokens(text: str) -> int:
    """The server's token count: about one token per 4 characters, at least one per word (documented,
    deterministic, and close enough to a BPE count for cost tests)."""
    if not text:
        return 0
    return max(len(text.split()), math.ceil(len(text) / 4))


def last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


class LoopbackServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, script: Script | None = None,
                 rules: list[tuple[str, Reply]] | None = None, latency: float | Callable[[dict], float] = 0.0,
                 faults: dict[str, float] | None = None, fault_script: FaultScript | None = None,
                 seed: int = 0, retry_after: float = 0.05, hang: float = 30.0,
                 max_inflight: int | None = None, ratelimit_headers: dict[str, str] | None = None,
                 cached_tokens: int = 0, models: tuple[str, ...] = ("loopback",), log: bool = True,
                 api_key: str | None = None):
        for name in faults or {}:
            if name not in FAULTS:
                raise ValueError(f"unknown fault {name!r}; expected one of {', '.join(FAULTS)}")
        self.host = host
        self.port = port
        self.script = script
        self.rules = [(re.compile(p), r) for p, r in (rules or [])]
        self.latency = latency
        self.faults = dict(faults or {})
        self.fault_script = fault_script
        self.seed = seed
        self.retry_after = retry_after
        self.hang = hang
        self.max_inflight = max_inflight
        self.ratelimit_headers = ratelimit_headers
        self.cached_tokens = cached_tokens
        self.models = models
        self.log_requests = log
        self.api_key = api_key
        self.requests: list[dict] = []
        self.counts: dict[str, int] = {}
        self.inflight = 0
        self.peak_inflight = 0
        self._seen: dict[str, int] = {}
        self._arrivals = 0
        self._script_pos = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Serve from a background thread with its own event loop."""
        self._thread = threading.Thread(target=self._thread_main, name="loopback-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("loopback server did not start")

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.run_until_complete(self._open())
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, backlog=2048)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            task.cancel()

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop = None

    async def serve_forever(self) -> None:
        """Serve on the current event loop (the ``python -m`` entry point)."""
        await self._open()
        self._ready.set()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    # -- decisions ---------------------------------------------------------------------------------

    def _fault_for(self, body: dict, raw: bytes, seen: int, arrival: int) -> str | None:
        if self.max_inflight is not None and self.inflight > self.max_inflight:
            return "429"
        if self.fault_script is not None:
            if callable(self.fault_script):
                return self.fault_script(body, seen)
            return self.fault_script[arrival] if arrival < len(self.fault_script) else None
        if not self.faults:
            return None
        digest = hashlib.blake2b(raw + f"|{self.seed}|{seen}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2**64
        edge = 0.0
        for name, rate in self.faults.items():
            edge += rate
            if u < edge:
                return name
        return None

    def _reply_for(self, body: dict) -> dict:
        reply: Reply | None = None
        if self.script is not None:
            if callable(self.script):
                reply = self.script(body)
            elif self._script_pos < len(self.script):
                reply = self.script[self._script_pos]
                self._script_pos += 1
        if reply is None:
            text = last_user_text(body)
            for pattern, rule_reply in self.rules:
                if pattern.search(text):
                    reply = rule_reply(body) if callable(rule_reply) else rule_reply
                    break
        if reply is None:
            reply = "echo: " + last_user_text(body)
        return reply if isinstance(reply, dict) else {"content": reply}

    def _completion(self, body: dict, fault: str | None, reply: dict) -> dict:
        content = "" if fault == "empty" else reply.get("content", "")
        finish = reply.get("finish_reason", "stop")
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if max_tokens and count_tokens(content) > max_tokens:
            content = content[: max_tokens * 4]
            finish = "length"
        n = int(body.get("n") or 1)
        prompt = sum(count_tokens(_text_of(m.get("content"))) + 4 for m in body.get("messages") or [])
        completion = count_tokens(content) * n
        usage = reply.get("usage") or {
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": min(self.cached_tokens, prompt)},
        }
        return {
            "id": f"chatcmpl-{self._arrivals}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", self.models[0]),
            "choices": [{"index": i, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish} for i in range(n)],
            "usage": usage,
        }

    # -- HTTP ------------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                keep = await self._dispatch(method, path, headers, raw, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, status: int, payload: dict,
                    extra: dict[str, str] | None = None, truncate: bool = False) -> None:
        body = json.dumps(payload).encode()
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
                  400: "Bad Request"}.get(status, "OK")
        head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json",
                f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + (body[: len(body) // 2] if truncate else body)
        writer.write(data)
        await writer.drain()

    async def _dispatch(self, method: str, path: str, headers: dict, raw: bytes,
                        writer: asyncio.StreamWriter) -> bool:
        path = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path.endswith("/models"):
            await self._send(writer, 200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "instructkit"} for m in self.models]})
            return True
        if method == "GET" and path.endswith("/_log"):
            await self._send(writer, 200, {"requests": self.requests})
            return True
        if method == "GET" and path.endswith("/_stats"):
            await self._send(writer, 200, {"counts": self.counts, "peak_inflight": self.peak_inflight,
                                           "requests": self._arrivals})
            return True
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            # As OpenAI answers a wrong key, echoing the key it was sent: clients must not repeat it.
            sent = headers.get("authorization", "").removeprefix("Bearer ")
            await self._send(writer, 401, {"error": {"message": f"Incorrect API key provided: {sent}",
                                                     "type": "invalid_request_error", "code": "invalid_api_key"}})
            return True
        if method != "POST" or not path.endswith("/chat/completions"):
            await self._send(writer, 404, {"error": {"message": f"no route {method} {path}", "type": "invalid"}})
            return True
        try:
            body = json.loads(raw)
        except ValueError:
            await self._send(writer, 400, {"error": {"message": "body is not JSON", "type": "invalid"}})
            return True
        key = hashlib.blake2b(raw, digest_size=16).hexdigest()
        seen = self._seen.get(key, 0)
        self._seen[key] = seen + 1
        arrival = self._arrivals
        self._arrivals += 1
        self.inflight += 1
        self.peak_inflight = max(self.peak_inflight, self.inflight)
        entry: dict[str, Any] = {"method": method, "path": path, "headers": headers, "json": body,
                                 "body_digest": key, "arrival": arrival, "seen": seen, "time": time.time()}
        try:
            fault = self._fault_for(body, raw, seen, arrival)
            entry["fault"] = fault
            self.counts[fault or "ok"] = self.counts.get(fault or "ok", 0) + 1
            if self.log_requests:
                self.requests.append(entry)
            latency = self.latency(body) if callable(self.latency) else self.latency
            if fault == "timeout":
                await asyncio.sleep(self.hang)
                entry["status"] = None
                return False
            if latency:
                await asyncio.sleep(latency)
            if fault == "drop":
                entry["status"] = None
                return False
            if fault == "429":
                entry["status"] = 429
                await self._send(writer, 429, {"error": {"message": "rate limited (loopback)",
                                                         "type": "rate_limit_exceeded"}}, {
                    "retry-after": str(max(1, math.ceil(self.retry_after))),
                    "retry-after-ms": str(int(self.retry_after * 1000)),
                })
                return True
            if fault == "500":
                entry["status"] = 500
                await self._send(writer, 500, {"error": {"message": "injected failure", "type": "server_error"}})
                return True
            reply = self._reply_for(body)
            if "status" in reply:
                entry["status"] = reply["status"]
                error = reply.get("error", "scripted")
                # A dict is sent as the error object itself (type, code), as OpenAI shapes its errors.
                await self._send(writer, reply["status"], {"error": error if isinstance(error, dict) else
                                                           {"message": error, "type": "scripted"}})
                return True
            payload = self._completion(body, fault, reply)
            entry["status"] = 200
            await self._send(writer, 200, payload, self.ratelimit_headers, truncate=fault == "truncated")
            return fault != "truncated"
        finally:
            self.inflight -= 1


class SubprocessServer:
    """The same server in its own process (its own interpreter lock: for benchmarks), as a context manager.
    ``.base_url``; ``.stats()`` and ``.requests`` are fetched over HTTP from the running server."""

    def __init__(self, *, latency: float = 0.0, faults: dict[str, float] | None = None,
                 retry_after: float = 0.05, max_inflight: int | None = None, seed: int = 0, log: bool = False):
        self.args = ["--port", "0", "--latency", str(latency), "--retry-after", str(retry_after),
                     "--seed", str(seed)]
        for name, rate in (faults or {}).items():
            self.args += ["--fault", f"{name}={rate}"]
        if max_inflight is not None:
            self.args += ["--max-inflight", str(max_inflight)]
        if log:
            self.args.append("--log")
        self.base_url = ""
        self._proc = None

    def __enter__(self) -> SubprocessServer:
        import subprocess

        self._proc = subprocess.Popen([sys.executable, "-m", "instructkit.testing.server", *self.args],
                                      stdout=subprocess.PIPE, text=True)
        self.base_url = self._proc.stdout.readline().strip()
        if not self.base_url:
            self._proc.kill()
            raise RuntimeError("loopback server process did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None

    def _get(self, path: str) -> dict:
        import urllib.request

        with urllib.request.urlopen(self.base_url + path, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        return self._get("/_stats")

    @property
    def requests(self) -> list[dict]:
        return self._get("/_log")["requests"]


def _parse_faults(values: list[str]) -> dict[str, float]:
    faults = {}
    for item in values:
        name, _, rate = item.partition("=")
        try:
            faults[name] = float(rate or 0.1)
        except ValueError:
            raise ValueError(f"--fault {item!r}: the rate must be a number, e.g. {name}=0.1") from None
    return faults


def _parse_rules(values: list[str]) -> list[tuple[str, str]]:
    rules = []
    for item in values:
        pattern, eq, reply = item.partition("=")
        if not eq:
            raise ValueError(f"--rule {item!r}: expected REGEX=REPLY or REGEX=@FILE")
        re.compile(pattern)
        if reply.startswith("@"):
            # Multi-line replies (a GPT-style Question/===/Answer block) do not fit on a command line.
            with open(reply[1:], encoding="utf-8") as fh:
                reply = fh.read()
        rules.append((pattern, reply))
    return rules


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m instructkit.testing.server",
                                     description="OpenAI-compatible loopback server (echo replies, faults).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=RATE",
                        help=f"inject a fault class at a rate; NAME in {', '.join(FAULTS)} (repeatable)")
    parser.add_argument("--retry-after", type=float, default=0.05, help="seconds sent with 429s")
    parser.add_argument("--max-inflight", type=int, default=None, help="429 beyond this many in flight")
    parser.add_argument("--rule", action="append", default=[], metavar="REGEX=REPLY",
                        help="reply REPLY when the last user message matches REGEX (repeatable); REGEX=@FILE "
                        "replies with the contents of FILE")
    parser.add_argument("--api-key", default=None, help="answer 401 to requests without this bearer key")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", action="store_true", help="keep a request log, served at GET /v1/_log")
    args = parser.parse_args(argv)
    try:
        server = LoopbackServer(host=args.host, port=args.port, latency=args.latency,
                                faults=_parse_faults(args.fault), retry_after=args.retry_after,
                                max_inflight=args.max_inflight, rules=_parse_rules(args.rule), seed=args.seed,
                                log=args.log, api_key=args.api_key)
    except (ValueError, re.error, OSError) as exc:
        parser.error(str(exc))

    async def _announce() -> None:
        task = asyncio.ensure_future(server.serve_forever())
        while not server._ready.is_set():
            if task.done():         # it failed to open: raise why
                task.result()
            await asyncio.sleep(0.01)
        print(server.base_url, flush=True)
        await task

    try:
        asyncio.run(_announce())
    except OSError as exc:          # the port is taken, or the host is not ours
        parser.exit(1, f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}\n")
    except KeyboardInterrupt:
        print(f"served {sum(server.counts.values())} requests: {server.counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
