"""The README's Quick start: exactly two commands, the first runs the main job on the bundled sample offline,
the second is what .ci/run executes. The main job is run here as written and its output checked."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from instructkit.quality.validate import validate_file

ROOT = Path(__file__).resolve().parent.parent


def _quickstart() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_is_two_commands_install_then_run():
    first, second = _quickstart()
    assert first.startswith("pip install -e . && instructkit ")
    assert second.startswith("pip install torch==2.13.0 && pip install -e \".[dev,train]\" && ")
    assert second.endswith("pytest -q")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "## Quick start" in ci and "eval" in ci  # CI runs the README's second line, not a copy of it


def test_main_job_runs_offline_on_the_sample_and_validates(tmp_path):
    first, _ = _quickstart()
    job = first.split("&&", 1)[1].strip()
    argv = shlex.split(job)
    assert argv[0] == "instructkit"
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    cmd = [sys.executable, "-m", "instructkit", *argv[1:]]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = tmp_path / argv[argv.index("-o") + 1]
    rows = json.loads(out.read_text(encoding="utf-8"))
    questions = json.loads((ROOT / "seeds/vqa/questions.json").read_text())["questions"]
    assert len(rows) == len(questions)
    assert all(r["image"] and r["conversations"][0]["from"] == "human" for r in rows)
    assert {r["meta"]["template"].split("#")[0] for r in rows} == {"adapt/vqa"}
    report = validate_file(out, image_root=tmp_path / "seeds" / "images")
    assert report.ok and report.problems == 0 and report.good_rows == len(questions)
    assert "funnel" in done.stderr and "written 29" in done.stderr
