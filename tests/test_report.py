"""`instructkit stats --html`: one self-contained file, checked in a real headless Chromium.

The gallery holds solid-colour test images; the screenshot must show those colours (thumbnails decoded and
painted) and the DOM must hold the conversation text, escaped."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from instructkit.cli import app

runner = CliRunner()
COLOURS = {"red": (230, 20, 20), "green": (20, 200, 40), "blue": (20, 40, 230)}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is not installed: the HTML report test needs it (apt-get install -y chromium)")


@pytest.fixture()
def report(tmp_path: Path) -> Path:
    rows = []
    for name, rgb in COLOURS.items():
        Image.new("RGB", (200, 150), rgb).save(tmp_path / f"{name}.png")
        rows.append({"images": [f"{name}.png"], "task": "caption", "source": "colours", "messages": [
            {"role": "user", "content": f"<image>\nDescribe the {name} picture."},
            {"role": "assistant", "content": f"A flat {name} square <script>alert(1)</script> & nothing else."}]})
    rows.append({"images": ["gone.png"], "task": "vqa", "source": "broken", "messages": [
        {"role": "user", "content": "<image>\nWhat is here?"}, {"role": "assistant", "content": "Nothing."}]})
    rows.append({"images": [], "task": "text", "source": "chat", "messages": [
        {"role": "user", "content": "Write a haiku about tea."},
        {"role": "assistant", "content": "Steam curls from the cup."}]})
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["stats", str(data), "--html", str(out), "--sample", "8"])
    assert result.exit_code == 0, result.output
    return out


def test_report_is_self_contained_and_escaped(report: Path):
    text = report.read_text(encoding="utf-8")
    assert text.count("src='data:image/jpeg;base64,") == 3
    # nothing to fetch: no external URLs, scripts or stylesheets
    assert not re.search(r"(src|href)=['\"](?!data:)", text)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<svg" in text and "Describe the green picture." in text
    # a missing image is a labelled grey box, not a broken <img>
    assert "<div class='noimg' title='gone.png'>image-missing" in text


def _run_chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    cmd = [_chromium(), *CHROMIUM_ARGS, f"--user-data-dir={tmp / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_gallery_renders_in_headless_chromium(report: Path, tmp_path: Path):
    shot = tmp_path / "shot.png"
    proc = _run_chromium([f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri()], tmp_path)
    assert shot.is_file(), f"chromium wrote no screenshot: {proc.stderr[-2000:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.shape == (1600, 1200, 3)
    counts = {name: int((np.abs(pixels - np.array(rgb)) <= 24).all(axis=-1).sum())
              for name, rgb in COLOURS.items()}
    # each thumbnail is 160x120 px (19,200): demand most of it painted in its colour
    for name, n in counts.items():
        assert n > 15_000, f"{name} thumbnail not visible in the screenshot ({n} pixels): {counts}"
    if os.environ.get("INSTRUCTKIT_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["INSTRUCTKIT_KEEP_SCREENSHOT"])

    dom = _run_chromium(["--dump-dom", report.as_uri()], tmp_path).stdout
    gallery = dom[dom.index("id=\"gallery\""):]
    for name in COLOURS:
        assert f"Describe the {name} picture." in gallery
    assert "Steam curls from the cup." in gallery
    assert gallery.count('class="thumb"') == 3
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in gallery


def test_no_images_means_no_image_is_opened(tmp_path: Path):
    (tmp_path / "a.png").write_bytes(b"garbage that would be image-corrupt if opened")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"images": ["a.png"], "messages": [
        {"role": "user", "content": "<image>\nWhat is it?"}, {"role": "assistant", "content": "A thing."}]}) + "\n")
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["stats", str(data), "--no-images", "--html", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["images"]["problems"] == {}
    text = out.read_text(encoding="utf-8")
    assert "not opened" in text and "image-corrupt" not in text and "data:image/jpeg" not in text
