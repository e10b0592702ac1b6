"""Benchmark: `instructkit adapt` on N synthetic VQA rows against the floor of plain JSON I/O.

    python bench/adapt_throughput.py --rows 1000000            # generic JSONL -> canonical JSONL, vqa templates
    python bench/adapt_throughput.py --rows 5000000 --skip-pair
    python bench/adapt_throughput.py --rows 1000000 --pair-only

Generic part: N rows ``{image, question, answers: [10 strings]}`` (answers drawn like VQA's: a majority
answer plus spelling variants and noise) -> canonical JSONL through the 10 ``vqa`` templates, majority
policy, strategy random. The floor reads the same input with orjson (``loads`` per line) and writes the
same output bytes with orjson (``dumps`` of the output objects, parsed from our output outside the timer):
JSON I/O and nothing else. Ratio = adapt time / floor time. Each run is a fresh child process; its peak
RSS is its own VmHWM, and its CPU time (user + system, from ``wait4``) is printed beside the wall time
because on a shared machine CPU time is the steadier figure.

Pair part: VQAv2 questions + annotations files with N questions, joined in lockstep (the official files'
order) and with the annotations shuffled (every annotation waits in the join index): rows/s, peak RSS,
and the index's bytes per row = (RSS shuffled - RSS aligned) / N.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
COLORS = ["red", "blue", "green", "white", "black", "yellow", "brown", "gray", "orange", "pink"]
OBJECTS = ["cat", "dog", "bus", "man", "woman", "car", "table", "cup", "sign", "train", "bird", "horse"]
QUESTIONS = ["What color is the {o}?", "Is there a {o} in the picture?", "How many {o}s are there?",
             "What is the {o} doing?", "Where is the {o}?", "What is next to the {o}?"]
VARIANTS = {"2": ["2", "two"], "1": ["1", "one"], "3": ["3", "three"], "yes": ["yes"], "no": ["no"]}


def make_generic(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        buf = []
        for i in range(n):
            o = rng.choice(OBJECTS)
            q = rng.choice(QUESTIONS).format(o=o)
            if q.startswith("Is"):
                pool = ["yes", "no"]
            elif q.startswith("How many"):
                pool = ["2", "1", "3"]
            else:
                pool = COLORS if "color" in q else OBJECTS
            major = rng.choice(pool)
            answers = []
            for _ in range(10):
                r = rng.random()
                a = major if r < 0.7 else rng.choice(pool)
                answers.append(rng.choice(VARIANTS.get(a, [a, "a " + a if r > 0.95 else a])))
            buf.append(orjson.dumps({"image": f"train2014/{i % 80000:012d}.jpg", "question": q,
                                     "answers": answers, "question_id": i}))
            if len(buf) >= 10000:
                fh.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            fh.write(b"\n".join(buf) + b"\n")


def make_pair(qpath: Path, apath: Path, n: int, shuffle: bool, seed: int = 0) -> None:
    rng = random.Random(seed)
    order = list(range(n))
    with open(qpath, "wb") as fh:
        fh.write(b'{"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "train2014", '
                 b'"questions": [\n')
        for i in order:
            o = OBJECTS[i % len(OBJECTS)]
            fh.write(orjson.dumps({"image_id": i // 5, "question": QUESTIONS[i % 6].format(o=o),
                                   "question_id": i}) + (b",\n" if i < n - 1 else b"\n"))
        fh.write(b"]}\n")
    if shuffle:
        rng.shuffle(order)
    with open(apath, "wb") as fh:
        fh.write(b'{"info": {}, "data_subtype": "train2014", "annotations": [\n')
        for k, i in enumerate(order):
            major = COLORS[i % 10]
            answers = [{"answer": major if j < 7 else COLORS[(i + j) % 10], "answer_confidence": "yes",
                        "answer_id": j + 1} for j in range(10)]
            fh.write(orjson.dumps({"question_type": "what color is the", "multiple_choice_answer": major,
                                   "answers": answers, "image_id": i // 5, "answer_type": "other",
                                   "question_id": i}) + (b",\n" if k < n - 1 else b"\n"))
        fh.write(b"]}\n")


# -- workers (run in a child process each, so that peak RSS is theirs alone) -------------------------------

def work_adapt(inp: str, out: str, num_proc: str = "1") -> dict:
    from instructkit.adapt import run_adapt

    t, c = time.perf_counter(), _cpu()
    funnel = run_adapt(inp, out, source="generic", templates="vqa", check_images=False, progress=False,
                       id_col="question_id", num_proc=int(num_proc), log=lambda m: None)
    return {"seconds": time.perf_counter() - t, "cpu": _cpu() - c, "written": funnel["written"]}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the --num-proc workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def work_floor(inp: str, ref: str, out: str) -> dict:
    loads, dumps = orjson.loads, orjson.dumps
    t_in, c_in = time.perf_counter(), _cpu()
    with open(inp, "rb") as fh:
        for line in fh:
            loads(line)
    t_in, cpu = time.perf_counter() - t_in, _cpu() - c_in
    t_out = 0.0
    rows = 0
    with open(ref, "rb") as src, open(out, "wb") as dst:
        while True:
            chunk = src.readlines(8 << 20)
            if not chunk:
                break
            objs = [loads(x) for x in chunk]     # outside the timer: the floor only writes
            t, c = time.perf_counter(), _cpu()
            for obj in objs:
                dst.write(dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
            dst.flush()
            t_out += time.perf_counter() - t
            cpu += _cpu() - c
            rows += len(objs)
        t, c = time.perf_counter(), _cpu()
        os.fsync(dst.fileno())   # RecordWriter's atomic write fsyncs too
        t_out += time.perf_counter() - t
        cpu += _cpu() - c
    return {"seconds": t_in + t_out, "cpu": cpu, "read_s": t_in, "write_s": t_out, "rows": rows}


def work_pair(q: str, a: str, out: str) -> dict:
    from instructkit.adapt import run_adapt

    t, c = time.perf_counter(), _cpu()
    funnel = run_adapt(q, out, annotations=a, check_images=False, progress=False, log=lambda m: None)
    return {"seconds": time.perf_counter() - t, "cpu": _cpu() - c, "written": funnel["written"],
            "pending_peak": funnel.get("join_pending_peak")}


def child(kind: str, *args: str) -> tuple[dict, float]:
    """Run a worker in a fresh interpreter; (its result, its peak RSS in MB). The result gets ``cpu_s``:
    user + system CPU seconds of the child and its own children (``--num-proc`` workers), which on a
    shared, busy machine is a steadier measure than wall time."""
    proc = subprocess.Popen([sys.executable, __file__, "--worker", kind, *args], stdout=subprocess.PIPE,
                            cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"worker {kind} failed ({proc.returncode})")
    res = orjson.loads(out)
    # Not usage.ru_maxrss: Linux carries the forking parent's peak across exec into the child's figure.
    return res, res["vm_hwm_mb"]


def vm_hwm_mb() -> float:
    """Peak RSS of this process's own address space (VmHWM starts afresh at exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_generic(n: int, tmp: Path, procs: int = 2) -> None:
    inp, out, floor_out = tmp / f"in{n}.jsonl", tmp / f"out{n}.jsonl", tmp / f"floor{n}.jsonl"
    print(f"load average before: {', '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    t = time.perf_counter()
    make_generic(inp, n)
    print(f"generic: made {n:,} rows ({inp.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s",
          flush=True)
    res, rss = child("adapt", str(inp), str(out))
    floor, floor_rss = child("floor", str(inp), str(out), str(floor_out))
    assert floor_out.read_bytes()[:4096] == out.read_bytes()[:4096]
    assert floor["rows"] == res["written"] == n
    # CPU time of the whole child (interpreter start and imports included) for both, so it is comparable
    print(f"generic {n:,} rows: adapt {res['seconds']:.2f}s ({n / res['seconds']:,.0f} rows/s), "
          f"floor {floor['seconds']:.2f}s (read {floor['read_s']:.2f}s + write {floor['write_s']:.2f}s), "
          f"ratio {res['seconds'] / floor['seconds']:.2f}x wall; CPU adapt {res['cpu']:.2f}s vs floor "
          f"{floor['cpu']:.2f}s = {res['cpu'] / floor['cpu']:.2f}x ({res['cpu'] / n * 1e6:.2f} vs "
          f"{floor['cpu'] / n * 1e6:.2f} us per row); "
          f"peak RSS adapt {rss:.0f} MB, floor {floor_rss:.0f} MB; output {out.stat().st_size / 1e6:.0f} MB",
          flush=True)
    if procs > 1:
        par_out = tmp / f"par{n}.jsonl"
        par, par_rss = child("adapt", str(inp), str(par_out), str(procs))
        same = par_out.read_bytes() == out.read_bytes()
        print(f"generic {n:,} rows --num-proc {procs}: {par['seconds']:.2f}s wall, ratio "
              f"{par['seconds'] / floor['seconds']:.2f}x to the one-process floor (CPU {par['cpu']:.2f}s in all "
              f"processes); byte-identical output: {same}; "
              f"peak RSS of the parent {par_rss:.0f} MB (workers are forks of it)", flush=True)
        par_out.unlink()
    for p in (inp, out, floor_out):
        p.unlink()


def bench_pair(n: int, tmp: Path) -> None:
    results = {}
    for shuffle in (False, True):
        q, a, out = tmp / "q.json", tmp / "a.json", tmp / "pair.jsonl"
        make_pair(q, a, n, shuffle)
        res, rss = child("pair", str(q), str(a), str(out))
        results[shuffle] = (res, rss)
        what = "annotations shuffled" if shuffle else "aligned (official order)"
        print(f"vqav2 pair {n:,} questions, {what}: {res['seconds']:.2f}s ({n / res['seconds']:,.0f} rows/s; "
              f"CPU {res['cpu']:.2f}s = {n / res['cpu']:,.0f} rows per CPU-second), "
              f"peak RSS {rss:.0f} MB, join index peak {res['pending_peak']:,} entries", flush=True)
        for p in (q, a, out):
            p.unlink()
    per_row = (results[True][1] - results[False][1]) * 1024 * 1024 / n
    print(f"vqav2 join index: {per_row:.0f} bytes per waiting annotation (RSS shuffled - aligned, / N)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--skip-pair", action="store_true")
    ap.add_argument("--pair-only", action="store_true")
    ap.add_argument("--pair-rows", type=int, default=None)
    ap.add_argument("--num-proc", type=int, default=2, help="also time --num-proc N (1: skip)")
    ap.add_argument("--worker", nargs="+")
    args = ap.parse_args()
    if args.worker:
        kind, *rest = args.worker
        fn = {"adapt": work_adapt, "floor": work_floor, "pair": work_pair}[kind]
        res = fn(*rest)
        res["vm_hwm_mb"] = vm_hwm_mb()
        sys.stdout.write(orjson.dumps(res).decode())
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="adapt-bench-") as d:
        tmp = Path(d)
        if not args.pair_only:
            bench_generic(args.rows, tmp, args.num_proc)
        if not args.skip_pair:
            bench_pair(args.pair_rows or args.rows, tmp)


if __name__ == "__main__":
    main()
