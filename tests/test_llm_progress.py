"""What a person at a terminal sees: a progress bar with rate, ETA and running cost, then the summary table."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios

from instructkit.resources import seeds_dir
from instructkit.testing.server import LoopbackServer


def _run_on_a_terminal(argv: list[str], cwd) -> str:
    """Run with stdout and stderr on a pseudo-terminal (tqdm draws only on a terminal); return what it drew."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    proc = subprocess.Popen(argv, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(master, 65536)
        except OSError:          # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(30) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_terminal_shows_rate_eta_running_cost_and_the_closing_summary(tmp_path):
    seeds = seeds_dir()
    with LoopbackServer(latency=0.04, script=lambda body: "Question: What is it?\n===\nAnswer: A photo.") as srv:
        text = _run_on_a_terminal([
            sys.executable, "-m", "instructkit", "self-instruct", "--captions", str(seeds / "coco/captions.json"),
            "--recipe", "conversation=8", "--model", "gpt-4o-mini", "--base-url", srv.base_url,
            "--concurrency", "2", "--no-cache", "-o", "out.jsonl"], cwd=tmp_path)
    frames = [f for f in re.split(r"[\r\n]+", text) if "row/s" in f or "row]" in f]
    # tqdm's frame: "desc: pct|bar| done/total [elapsed<eta, rate row/s, $cost c=concurrency]"
    frame = re.compile(r"conversation: +\d+%.*\| *(\d+)/48 \[\d\d:\d\d<(\d\d:\d\d), +([\d.]+)row/s, "
                       r"\$(\d+\.\d{4}) c=\d+\]")
    seen = [m for m in map(frame.search, frames) if m]
    assert seen, text
    last = seen[-1]
    assert last.group(1) == "48" and float(last.group(3)) > 0 and float(last.group(4)) > 0
    assert any(m.group(2) != "00:00" or int(m.group(1)) < 48 for m in seen)     # an ETA while running
    costs = [float(m.group(4)) for m in seen]
    assert costs == sorted(costs)                                              # the cost runs up
    summary = text[text.index("rows "):]
    for row in ("rows              48 (48 ok, 0 failed)", "requests sent", "cache hits", "tokens", "cost  ",
                "concurrency", "elapsed"):
        assert row in summary, row
    assert f"${last.group(4)}" in summary            # the bar's final cost is the summary's
    assert "self-instruct funnel:" in summary
