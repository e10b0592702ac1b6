"""Throughput and peak memory of ``instructkit mix`` on synthetic canonical JSONL.

Three inputs (text only, image only, half and half; 50/30/20% of the rows), small rows. Each case runs in
its own process so its peak RSS (``ru_maxrss``) is its own. The baseline, measured in the same run, is the
plain streaming copy ``RecordReader`` -> ``RecordWriter`` (pydantic parse + dump, what ``convert`` does)
over the same rows; the ratio is mix rows/s over baseline rows/s.

    python bench/mix_throughput.py                 # 1M and 5M rows (a few minutes on 2 cores)
    python bench/mix_throughput.py --sizes 200000  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARES = (("text", 0.5, 0.0), ("image", 0.3, 1.0), ("mixed", 0.2, 0.5))


def generate(folder: Path, total: int) -> list[Path]:
    paths = []
    for name, share, image_share in SHARES:
        n = int(total * share)
        path = folder / f"{name}.jsonl"
        every = 0 if image_share == 0 else round(1 / image_share)
        with open(path, "wb") as fh:
            buf = []
            for i in range(n):
                if every and i % every == 0:
                    buf.append(b'{"id":"%s%d","images":["img/%d.jpg"],"messages":[{"role":"user","content":'
                               b'"<image>\\nWhat is shown in picture %d?"},{"role":"assistant","content":'
                               b'"A small cat on a sofa."}],"source":"%s","task":"vqa","meta":{}}\n'
                               % (name.encode(), i, i, i, name.encode()))
                else:
                    buf.append(b'{"id":"%s%d","images":[],"messages":[{"role":"user","content":'
                               b'"Tell me fact number %d."},{"role":"assistant","content":'
                               b'"Fact %d is that water is wet."}],"source":"%s","task":"text","meta":{}}\n'
                               % (name.encode(), i, i, i, name.encode()))
                if len(buf) >= 100_000:
                    fh.write(b"".join(buf))
                    buf = []
            fh.write(b"".join(buf))
        paths.append(path)
    return paths


CHILD = r"""
import json, resource, sys, time
from pathlib import Path
case, folder, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
names = ["text", "image", "mixed"]
t0 = time.perf_counter()
if case == "baseline":
    from instructkit.formats import RecordReader, RecordWriter
    rows = 0
    with RecordWriter(out) as w:
        for name in names:
            for rec in RecordReader(folder / f"{name}.jsonl"):
                w.write(rec)
                rows += 1
    read = rows
else:
    from instructkit.mix import InputSpec, MixOptions, run_mix
    kw = json.loads(sys.argv[4])
    specs = [InputSpec(folder / f"{n}.jsonl", n) for n in names]
    m = run_mix(MixOptions(inputs=specs, **kw), out, seed=0, log=None)
    rows = m["totals"]["rows"]
    read = sum(i["read"] for i in m["inputs"])
dt = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rows": rows, "read": read, "seconds": dt, "cpu_seconds": ru.ru_utime + ru.ru_stime,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CASES = {
    "interleave": {"strategy": "interleave", "stopping": "without-replacement"},
    "batches-ratio": {"batches": "ratio", "batch_size": 32, "image_fraction": 0.4},
    "shuffle-bounded": {"strategy": "shuffle", "shuffle_memory_mb": 256},
    "shuffle": {"strategy": "shuffle"},
}


def run_case(case: str, folder: Path, kw: dict | None) -> dict:
    out = folder / f"out-{case}.jsonl"
    args = [sys.executable, "-c", CHILD, case, str(folder), str(out), json.dumps(kw or {})]
    res = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=True)
    out.unlink(missing_ok=True)
    for extra in folder.glob("out-*.manifest.json"):
        extra.unlink()
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,5000000", help="comma-separated total rows")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--baseline-rows", type=int, default=1_000_000,
                    help="rows for the baseline copy (its rate does not depend on size)")
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cases = args.cases.split(",")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (wall-clock rates suffer when the box is busy; "
          "rows/s of CPU time is rows over the process's own user+system time)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="mixbench-", dir=args.tmp) as tmp:
        folder = Path(tmp)
        base_n = min(args.baseline_rows, max(sizes))
        t = time.perf_counter()
        generate(folder, base_n)
        print(f"generated {base_n} rows in {time.perf_counter() - t:.1f}s")
        base = run_case("baseline", folder, None)
        base_rate = base["rows"] / base["seconds"]
        base_cpu = base["rows"] / base["cpu_seconds"]
        print(f"baseline RecordReader->RecordWriter copy: {base['rows']:,} rows, {base_rate:,.0f} rows/s wall, "
              f"{base_cpu:,.0f} rows/s of CPU time, peak RSS {base['peak_rss_mb']:.0f} MB")
        for n in sizes:
            if n != base_n:
                generate(folder, n)
            size_mb = sum(p.stat().st_size for p in folder.glob("*.jsonl")) / 2**20
            print(f"\n{n:,} rows ({size_mb:,.0f} MB of JSONL)")
            for case in cases:
                r = run_case(case, folder, CASES[case])
                rate = r["read"] / r["seconds"]
                cpu = r["read"] / r["cpu_seconds"]
                results[(case, n)] = r
                print(f"  {case:16s} read {r['read']:>9,} wrote {r['rows']:>9,} in {r['seconds']:6.1f}s: "
                      f"{rate:>9,.0f} rows/s wall ({rate / base_rate:.2f}x baseline), {cpu:>9,.0f} rows/s "
                      f"of CPU time ({cpu / base_cpu:.2f}x)  peak RSS {r['peak_rss_mb']:6.0f} MB")
    if len(sizes) > 1:
        lo, hi = min(sizes), max(sizes)
        print(f"\npeak RSS growth from {lo:,} to {hi:,} rows (the entry index is 8 bytes a row: "
              f"{(hi - lo) * 8 / 2**20:.0f} MB):")
        for case in cases:
            if (case, lo) in results and (case, hi) in results:
                d = results[(case, hi)]["peak_rss_mb"] - results[(case, lo)]["peak_rss_mb"]
                print(f"  {case:16s} +{d:.0f} MB")


if __name__ == "__main__":
    main()
