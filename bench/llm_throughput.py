"""Throughput of the LLM engine against the loopback server (real HTTP, real openai client).

    python bench/llm_throughput.py [--n 5000] [--latency 0.05] [--concurrency 128]

Prints, for N requests at a fixed server latency:
- the sequential baseline (one call at a time, what Self-Instruct and Alpaca's generators do), measured on
  a sample and scaled to N;
- the raw SDK: the bare ``AsyncOpenAI`` client with a semaphore, no engine, and the engine's backend alone
  (its tuned use of the same SDK): what the client library itself costs per call on this CPU;
- the engine with no faults and with 10% injected 429s, each against the ideal N * latency / concurrency;
- the same at a latency where the client's CPU is no longer the bottleneck (``--cpu-free-latency``).
The server runs in its own process so that it does not share the client's interpreter lock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from instructkit.llm import Engine, LLMConfig, Request  # noqa: E402
from instructkit.testing.server import SubprocessServer  # noqa: E402


def make_requests(n: int, tag: str) -> list[Request]:
    return [Request(key=f"{tag}{i}", messages=[{"role": "user", "content": f"question {tag} {i}"}],
                    max_tokens=64) for i in range(n)]


def run_engine(url: str, n: int, concurrency: int, tag: str, cache: Path | None) -> tuple[float, float, dict]:
    cfg = LLMConfig(model="loopback", base_urls=[url], api_key="sk-bench", concurrency=concurrency,
                    cache_path=cache, cache_mode="use" if cache else "off", progress=False, max_retries=10)
    reqs = make_requests(n, tag)
    with Engine(cfg) as engine:
        list(engine.run(make_requests(min(200, n), "warm" + tag)))    # connections up, imports done
        wall0, cpu0 = time.perf_counter(), time.process_time()
        results = list(engine.run(reqs))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        assert len(results) == n and all(r.ok for r in results)
        stats = engine.stats.as_dict()
    return wall, cpu, stats


def run_raw_sdk(url: str, n: int, concurrency: int) -> tuple[float, float]:
    from openai import AsyncOpenAI

    async def main() -> tuple[float, float]:
        client = AsyncOpenAI(base_url=url, api_key="sk-bench", max_retries=0)
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> str:
            async with sem:
                reply = await client.chat.completions.create(
                    model="loopback", messages=[{"role": "user", "content": f"raw {i}"}], max_tokens=64)
                return reply.choices[0].message.content

        await asyncio.gather(*[one(-i) for i in range(1, 201)])
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*[one(i) for i in range(n)])
        out = time.perf_counter() - wall0, time.process_time() - cpu0
        await client.close()
        return out

    return asyncio.run(main())


def scenario(n: int, lat: float, conc: int, sample: int, raw: bool, cache: bool) -> dict:
    ideal = n * lat / conc
    out: dict = {"ideal": ideal}
    print(f"-- N={n}, server latency {lat * 1000:.0f} ms, concurrency {conc}: ideal N*latency/concurrency = "
          f"{ideal:.2f} s")
    with SubprocessServer(latency=lat, retry_after=0.05) as srv:
        url = srv.base_url
        wall, _, _ = run_engine(url, sample, 1, "seq", None)
        sequential = out["sequential"] = wall / sample * n
        print(f"sequential baseline (1 in flight): {wall / sample * 1000:.1f} ms/call -> {sequential:.1f} s "
              f"for N (measured on {sample} calls, scaled)")
        if raw:
            raw_wall, raw_cpu = run_raw_sdk(url, n, conc)
            out["raw_cpu"] = raw_cpu
            print(f"raw openai SDK, no engine:  wall {raw_wall:6.2f} s = {raw_wall / ideal:.2f}x ideal   "
                  f"client CPU {raw_cpu / n * 1000:.2f} ms/call")
            be_wall, be_cpu = run_backend_only(url, n, conc)
            out["backend_cpu"] = be_cpu
            print(f"engine's backend alone:     wall {be_wall:6.2f} s = {be_wall / ideal:.2f}x ideal   "
                  f"client CPU {be_cpu / n * 1000:.2f} ms/call")
        wall, cpu, stats = run_engine(url, n, conc, "clean", None)
        out["clean"] = wall
        print(f"engine, no faults:          wall {wall:6.2f} s = {wall / ideal:.2f}x ideal   "
              f"client CPU {cpu / n * 1000:.2f} ms/call   speed-up vs sequential {sequential / wall:.0f}x")
        if cache:
            with tempfile.TemporaryDirectory() as tmp:
                wall_c, cpu_c, _ = run_engine(url, n, conc, "cached", Path(tmp) / "c.sqlite")
            print(f"engine, writing the cache:  wall {wall_c:6.2f} s = {wall_c / ideal:.2f}x ideal   "
                  f"client CPU {cpu_c / n * 1000:.2f} ms/call")
    with SubprocessServer(latency=lat, retry_after=0.05, faults={"429": 0.1}) as srv:
        wall, cpu, stats = run_engine(srv.base_url, n, conc, "storm", None)
        out["storm"] = wall
        print(f"engine, 10% 429s:           wall {wall:6.2f} s = {wall / ideal:.2f}x ideal   "
              f"client CPU {cpu / n * 1000:.2f} ms/call   speed-up vs sequential {sequential / wall:.0f}x   "
              f"({stats['http_429']} 429s, {stats['retries']} retries, lowest concurrency "
              f"{stats['concurrency_min']:.0f})")
    return out


def run_backend_only(url: str, n: int, concurrency: int) -> tuple[float, float]:
    """The engine's own use of the SDK (pooled clients, plain-JSON body, orjson reply) without the engine."""
    from instructkit.llm.backend import OpenAIBackend

    async def main() -> tuple[float, float]:
        backend = OpenAIBackend(url, "sk-bench", timeout=60, concurrency=concurrency)
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> str:
            async with sem:
                reply = await backend.complete({"model": "loopback", "max_tokens": 64, "messages": [
                    {"role": "user", "content": f"backend {i}"}]})
                return reply.texts[0]

        await asyncio.gather(*[one(-i) for i in range(1, 201)])
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*[one(i) for i in range(n)])
        out = time.perf_counter() - wall0, time.process_time() - cpu0
        await backend.close()
        return out

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--sequential-sample", type=int, default=60)
    parser.add_argument("--cache", action="store_true", help="also time the engine writing its SQLite cache")
    parser.add_argument("--cpu-free-latency", type=float, default=0.5,
                        help="repeat at this latency, where the client CPU is no longer the bottleneck (0: skip)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    main_run = scenario(args.n, args.latency, args.concurrency, args.sequential_sample, True, args.cache)
    floor = main_run["backend_cpu"]
    print(f"client CPU floor: N x backend CPU per call = {floor:.2f} s vs ideal {main_run['ideal']:.2f} s -> "
          f"{'the CPU, not the engine, bounds this run' if floor > main_run['ideal'] else 'not CPU-bound'}")
    if args.cpu_free_latency:
        scenario(args.n, args.cpu_free_latency, args.concurrency, max(4, args.sequential_sample // 10), False,
                 False)


if __name__ == "__main__":
    main()
