"""How much a rerun of an unchanged recipe costs compared with building it.

1. The shipped quickstart recipe (adapt, convert, mix, tiny model, 4 training steps): a full build, then
   a rerun with nothing changed (every step skipped by fingerprint). Baseline: the full build.
2. Input hashing: sha256 of a large input file, then the same lookup through the (path, size, mtime)
   hash cache that reruns use. Baseline: hashing the file.

    python bench/pipeline_rerun.py [--size-mb 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from instructkit.pipeline import run_recipe
from instructkit.pipeline.state import Hasher
from instructkit.resources import recipes_dir


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=256)
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        recipe = recipes_dir() / "quickstart.yaml"
        build = timed(lambda: run_recipe(recipe, workdir=work))
        rerun = timed(lambda: run_recipe(recipe, workdir=work))
        print(f"quickstart: full build {build:.2f} s, unchanged rerun {rerun * 1000:.0f} ms "
              f"-> rerun costs {rerun / build:.4f} of a build ({build / rerun:.0f}x faster)")

        big = Path(tmp) / "annotations.json"
        block = os.urandom(1 << 20)
        with open(big, "wb") as fh:
            for _ in range(args.size_mb):
                fh.write(block)
        hasher = Hasher(Path(tmp) / "hashes.json")
        cold = timed(lambda: hasher.path(big))
        hasher.save()
        warm_hasher = Hasher(Path(tmp) / "hashes.json")
        warm = timed(lambda: warm_hasher.path(big))
        print(f"hash {args.size_mb} MB input: sha256 {cold:.3f} s ({args.size_mb / cold:.0f} MB/s), cached "
              f"{warm * 1e6:.0f} us -> {cold / warm:.0f}x faster")


if __name__ == "__main__":
    main()
