"""I/O throughput and memory of the record readers and writers.

    python bench/io_throughput.py                  # 1M rows; 200k and 1M measured in separate processes
    python bench/io_throughput.py --rows 200000 --small 50000 --llava-rows 0   # quicker

What it measures, each in a fresh child process so peak RSS of one run does not leak into the next:

* ``rw``: N synthetic canonical rows read through ``RecordReader`` and written through ``RecordWriter``
  (validation of every schema rule, content ids kept, atomic write), against a plain
  ``json.loads`` / ``json.dumps`` loop over the same file (no validation at all) as the baseline.
* ``llava``: the same rows as one LLaVA JSON list, streamed by ``RecordReader`` (element by element),
  against ``json.load`` of the whole list as the baseline.

Both are run at a small and a large size; streaming means peak RSS is flat between them. The synthetic rows
are shaped like instruction data: 60% single-turn VQA with an image, 25% multi-turn image conversations,
15% text-only, fixed seed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("the a of and to in is on with for what how many which color left right near man woman dog cat "
         "table street car bus sign person people red blue green white black two three small large wooden "
         "picture image shows standing sitting holding looking next behind front top bottom building tree sky "
         "water road window door light dark open closed").split()


def synthetic_row(i: int, rng: random.Random) -> dict:
    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    kind = rng.random()
    if kind < 0.60:
        turns, images, task = [(text(5, 14) + "?", text(1, 3))], [f"coco/train2017/{i % 50000:012d}.jpg"], "vqa"
    elif kind < 0.85:
        turns = [(text(5, 14) + "?", text(15, 50) + ".") for _ in range(rng.randint(2, 4))]
        images, task = [f"coco/train2017/{i % 50000:012d}.jpg"], "conversation"
    else:
        turns, images, task = [(text(8, 20) + "?", text(30, 80) + ".") for _ in range(rng.randint(1, 2))], [], "text"
    messages = []
    for k, (q, a) in enumerate(turns):
        messages.append({"role": "user", "content": ("<image>\n" if images and k == 0 else "") + q})
        messages.append({"role": "assistant", "content": a})
    return {"images": images, "messages": messages, "source": "bench", "task": task, "meta": {"n": i}}


def make_inputs(workdir: Path, rows: int, llava_rows: int, seed: int) -> tuple[Path, Path | None]:
    from instructkit.formats import RecordWriter
    from instructkit.records import make_record

    canonical = workdir / "rows.jsonl"
    llava = workdir / "rows.llava.json" if llava_rows else None
    rng = random.Random(seed)
    with RecordWriter(canonical) as out:
        lw = RecordWriter(llava, "llava").__enter__() if llava else None
        for i in range(rows):
            rec = make_record(synthetic_row(i, rng))
            out.write(rec)
            if lw is not None and i < llava_rows:
                lw.write(rec)
        if lw is not None:
            lw.__exit__(None, None, None)
    return canonical, llava


# ---- children: one measurement per process ------------------------------------------------------------

def rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, path: Path, limit: int, out: Path) -> dict:
    from instructkit.formats import RecordReader, RecordWriter

    start_rss = rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    n = 0
    if mode == "rw":
        with RecordWriter(out) as writer:
            for rec in RecordReader(path):
                writer.write(rec)
                n += 1
                if n == limit:
                    break
    elif mode == "rw-json":
        with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
            for line in src:
                dst.write(json.dumps(json.loads(line), ensure_ascii=False) + "\n")
                n += 1
                if n == limit:
                    break
    elif mode == "llava":
        for _ in RecordReader(path):
            n += 1
    elif mode == "llava-json":
        with open(path, encoding="utf-8") as fh:
            n = len(json.load(fh))
    else:
        raise SystemExit(f"unknown mode {mode}")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"mode": mode, "rows": n, "wall_s": wall, "cpu_s": cpu, "rows_per_s": n / wall,
            "rows_per_cpu_s": n / cpu, "peak_rss_mb": rss_mb(), "start_rss_mb": start_rss}


def run_child(mode: str, path: Path, limit: int, workdir: Path) -> dict:
    out = workdir / f"out-{mode}-{limit}.jsonl"
    cmd = [sys.executable, __file__, "--child", mode, "--input", str(path), "--limit", str(limit),
           "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    if out.exists():
        out.unlink()
    return json.loads(res.stdout.strip().splitlines()[-1])


def slice_llava(src: Path, rows: int, dst: Path) -> Path:
    """The first ``rows`` elements of a LLaVA list as its own list (streamed)."""
    from instructkit.formats import RecordReader, RecordWriter

    with RecordWriter(dst, "llava") as out:
        for i, rec in enumerate(RecordReader(src)):
            if i == rows:
                break
            out.write(rec)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="large size (rows)")
    ap.add_argument("--small", type=int, default=200_000, help="small size (rows)")
    ap.add_argument("--llava-rows", type=int, default=None,
                    help="rows of the LLaVA list at the large size (default: --rows; 0 skips)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.input, args.limit, args.out)))
        return

    llava_rows = args.rows if args.llava_rows is None else args.llava_rows
    with tempfile.TemporaryDirectory(prefix="ik-bench-io-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        t = time.perf_counter()
        canonical, llava = make_inputs(workdir, args.rows, llava_rows, args.seed)
        size = canonical.stat().st_size
        print(f"input: {args.rows} rows, {size / 1e6:.0f} MB canonical JSONL ({size / args.rows:.0f} B/row)"
              + (f", {llava.stat().st_size / 1e6:.0f} MB LLaVA list" if llava else "")
              + f"; generated in {time.perf_counter() - t:.0f} s", flush=True)

        results = {}
        for n in (args.small, args.rows):
            for mode in ("rw", "rw-json"):
                results[mode, n] = r = run_child(mode, canonical, n, workdir)
                print(f"  {mode:<10} {n:>9} rows: {r['rows_per_s']:>9,.0f} rows/s wall, "
                      f"{r['rows_per_cpu_s']:>9,.0f} rows/s CPU, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        if llava:
            small_list = slice_llava(llava, min(args.small, llava_rows), workdir / "small.llava.json")
            for n, path in ((min(args.small, llava_rows), small_list), (llava_rows, llava)):
                for mode in ("llava", "llava-json"):
                    results[mode, n] = r = run_child(mode, path, 0, workdir)
                    print(f"  {mode:<10} {n:>9} rows: {r['rows_per_s']:>9,.0f} rows/s wall, "
                          f"{r['rows_per_cpu_s']:>9,.0f} rows/s CPU, peak RSS {r['peak_rss_mb']:.0f} MB "
                          f"({path.stat().st_size / 1e6:.0f} MB list)", flush=True)

    big, small = args.rows, args.small
    ours, base = results["rw", big], results["rw-json", big]
    print("\nsummary")
    print(f"  read+write {big} rows, instructkit vs json loop: wall {ours['rows_per_s']:,.0f} vs "
          f"{base['rows_per_s']:,.0f} rows/s ({ours['rows_per_s'] / base['rows_per_s']:.2f}x); CPU time "
          f"{ours['rows_per_cpu_s']:,.0f} vs {base['rows_per_cpu_s']:,.0f} rows/s "
          f"({ours['rows_per_cpu_s'] / base['rows_per_cpu_s']:.2f}x)")
    verdict = lambda x: "met" if x >= 100_000 else "missed"  # noqa: E731
    print(f"  target >= 100,000 rows/s: wall {verdict(ours['rows_per_s'])}, CPU time "
          f"{verdict(ours['rows_per_cpu_s'])} (wall counts waiting for a CPU on a busy machine and the "
          f"final fsync of the atomic write; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    growth = results["rw", big]["peak_rss_mb"] - results["rw", small]["peak_rss_mb"]
    print(f"  peak RSS read+write: {results['rw', small]['peak_rss_mb']:.0f} MB at {small} rows, "
          f"{results['rw', big]['peak_rss_mb']:.0f} MB at {big} rows (growth {growth:+.0f} MB)")
    if llava:
        ls, lb = min(small, llava_rows), llava_rows
        print(f"  LLaVA list streamed: peak RSS {results['llava', ls]['peak_rss_mb']:.0f} MB at {ls} rows, "
              f"{results['llava', lb]['peak_rss_mb']:.0f} MB at {lb} rows; json.load of the whole list: "
              f"{results['llava-json', ls]['peak_rss_mb']:.0f} MB -> {results['llava-json', lb]['peak_rss_mb']:.0f} MB")
    print(f"  machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")

if __name__ == "__main__":
    main()
