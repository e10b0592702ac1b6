"""docs/tutorial.md: every ```bash block runs, in order, in one shell, on the bundled sample."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.slow
def test_tutorial_commands_run(tmp_path):
    blocks = bash_blocks(TUTORIAL.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    # `instructkit` on PATH runs the code of this checkout, whatever is installed.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "instructkit"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m instructkit "$@"\n')
    shim.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    script = "set -euo pipefail\n" + "\n".join(blocks)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)           # the tutorial must not need one
    proc = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert (work / "data" / "vqa.jsonl").is_file() and (work / "data" / "mix.jsonl").is_file()
    funnel = json.loads((work / "data" / "vqa.filtered.funnel.json").read_text())
    assert funnel["read"] == 6 and funnel["kept"] == 6
    assert "data:image/jpeg;base64," in (work / "report.html").read_text(encoding="utf-8")
    assert "rows kept: 24" in proc.stderr and "«" in proc.stderr
    assert (work / "out" / "models" / "trained" / "model.safetensors").is_file()
    manifest = json.loads((work / "out" / "instructkit.lock.json").read_text())
    assert [s["name"] for s in manifest["steps"]] == ["vqa", "text", "mix", "tiny-model", "train"]
    # The hand-run steps and the recipe build the same data.
    assert (work / "out" / "data" / "vqa.jsonl").read_bytes() == (work / "data" / "vqa.jsonl").read_bytes()
    assert (work / "out" / "data" / "mix.jsonl").read_bytes() == (work / "data" / "mix.jsonl").read_bytes()
    # The second run did nothing; the --plan after a changed option names mix and train only.
    assert "done: 0 step(s) ran, 5 unchanged" in proc.stderr
    plan = proc.stderr.split("done: 0 step(s) ran, 5 unchanged", 1)[1]
    assert "mix (mix): would run (changed)" in plan and "train (train): would run (after mix)" in plan
    assert "vqa (adapt): unchanged, skipped" in plan and "tiny-model (tiny-model): unchanged" in plan
