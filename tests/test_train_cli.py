"""`instructkit train` end to end: dry-run on the shipped sample, bad input with clear errors, and the
same command under torchrun with 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from instructkit.cli import app
from instructkit.formats import write_records
from instructkit.records import conversation
from instructkit.resources import seeds_dir
from instructkit.testing.tiny import TINY_CHAT_TEMPLATE, save_tiny_llava, save_tiny_text_lm, write_tiny_images

runner = CliRunner()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    save_tiny_llava(root / "llava")
    save_tiny_text_lm(root / "textlm")
    # LLaVA-format rows over the shipped photos (JPEG, some grayscale)
    caps = json.loads((seeds_dir() / "coco" / "captions.json").read_text())
    names = {im["id"]: im["file_name"] for im in caps["images"]}
    rows = [conversation("Describe the image briefly.", a["caption"], images=[names[a["image_id"]]],
                         source="coco") for a in caps["annotations"][:12]]
    write_records(rows, root / "llava.json", "llava")
    return root


def invoke(*args):
    result = runner.invoke(app, ["train", *map(str, args)])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_dry_run_on_shipped_sample_marks_loss_tokens(env):
    code, out = invoke(env / "llava.json", seeds_dir() / "text" / "sharegpt.json", "-m", env / "llava",
                       "--image-root", seeds_dir() / "images", "--dry-run", "--preview", "1",
                       "-o", env / "never")
    assert code == 0, out
    assert "reading as llava" in out and "reading as sharegpt" in out
    assert "rows kept: 30" in out and "tokens per image: 4" in out
    assert "<image×4>" in out and "«" in out and "length: min" in out
    assert f"--- {env / 'llava.json'} line 2 (image, coco, " in out, out       # the first row, named by line
    assert not (env / "never").exists()          # a dry run writes nothing


def test_planted_template_that_masks_everything_fails_preflight(env, tmp_path):
    planted = tmp_path / "masks-all.jinja"
    planted.write_text(TINY_CHAT_TEMPLATE.replace("{% generation %}{{ text }}{{ eos_token }}{% endgeneration %}",
                                                  "{{ text }}{{ eos_token }}{% generation %}{% endgeneration %}"))
    code, out = invoke(seeds_dir() / "text" / "sharegpt.json", "-m", env / "llava", "--chat-template", planted,
                       "--dry-run")
    assert code == 1
    assert "18 row(s) cannot be trained on (zero-labels: 18)" in out and "no token carries loss" in out


@pytest.mark.parametrize(("case", "expected"), [
    ("missing-model", "does not exist"),
    ("not-vlm", "is not a vision-language model"),
    ("missing-images", "image '000000000001.jpg' not found under --image-root"),
    ("max-length", "--max-length 3 is smaller than one image's tokens"),
    ("no-markers", "chat template has no {% generation %} markers"),
])
def test_bad_input_gives_clear_errors(env, tmp_path, case, expected):
    args = [env / "llava.json", "-m", env / "llava", "--image-root", seeds_dir() / "images", "--dry-run"]
    if case == "missing-model":
        args[2] = tmp_path / "nope"
    elif case == "not-vlm":
        args[2] = env / "textlm"
    elif case == "missing-images":
        args[4] = tmp_path
    elif case == "max-length":
        args += ["--max-length", "3"]
        # the tiny images are 4 tokens; 3 is below one image but also below any text row
        expected = "--max-length 3 is too small"
    elif case == "no-markers":
        bad = tmp_path / "plain.jinja"
        bad.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
        args += ["--chat-template", bad]
    code, out = invoke(*args)
    assert code == 1 and expected in out, out


def test_row_errors_name_the_file_and_line_of_the_row(env, tmp_path):
    # The text file comes first, so the first image row is row 18 of the rows read; the error must name
    # the LLaVA file and that row's line in it, not an index across files.
    code, out = invoke(seeds_dir() / "text" / "sharegpt.json", env / "llava.json", "-m", env / "llava",
                       "--image-root", tmp_path, "--dry-run")
    assert code == 1 and "image '000000000001.jpg' not found" in out, out
    line = next(i for i, text in enumerate((env / "llava.json").read_text().splitlines(), 1)
                if "000000000001.jpg" in text)
    assert f"{env / 'llava.json'}:{line}: record " in out, out
    assert "row 18" not in out


def test_max_length_below_one_image(env, tmp_path):
    save_tiny_llava(tmp_path / "big", image_size=64)          # 64 tokens per image
    code, out = invoke(env / "llava.json", "-m", tmp_path / "big", "--image-root", seeds_dir() / "images",
                       "--dry-run", "--max-length", "40")
    assert code == 1 and "--max-length 40 is smaller than one image's tokens (64 tokens" in out, out


def test_processor_and_model_disagreeing_on_image_tokens_fails_preflight(env, tmp_path):
    import shutil

    model = shutil.copytree(env / "llava", tmp_path / "llava")
    conf = json.loads((model / "processor_config.json").read_text())
    conf["num_additional_image_tokens"] = 0            # CLIP has a CLS token: the classic mismatch
    (model / "processor_config.json").write_text(json.dumps(conf))
    code, out = invoke(env / "llava.json", "-m", model, "--image-root", seeds_dir() / "images", "--dry-run")
    assert code == 1
    assert "expands each image to 3 tokens but the vision tower yields 4 features per image" in out, out


def test_over_length_and_missing_images_are_counted_drops(env, tmp_path):
    root = tmp_path / "img"
    root.mkdir()
    for name in ("000000000001.jpg", "000000000002.jpg"):
        (root / name).write_bytes((seeds_dir() / "images" / name).read_bytes())
    code, out = invoke(env / "llava.json", seeds_dir() / "text" / "sharegpt.json", "-m", env / "llava",
                       "--image-root", root, "--dry-run", "--on-error", "skip", "--max-length", "200")
    assert code == 0, out
    # captions 1-10 are of photos 1 and 2, 11-12 of photo 3, which is not there
    # named by file and line (llava.json holds one row per line after its opening "[")
    assert f"dropped (image-missing): 2 row(s), e.g. {env / 'llava.json'} lines 12, 13\n" in out, out
    assert "dropped (over-max-length):" in out and "rows kept: 21" in out


def test_two_process_gloo_run_completes_and_ranks_see_different_data(env, tmp_path):
    write_tiny_images(tmp_path / "img", [f"{i}.png" for i in range(8)])
    rows = [conversation("What is it?", f"A cat number {i}.", images=[f"{i // 2}.png"], source="coco") if i % 2 == 0
            else conversation(f"Say {i}.", f"Number {i} here.", source="chat") for i in range(16)]
    write_records(rows, tmp_path / "data.jsonl")
    out = tmp_path / "out"
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1",
                "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port),
           "-m", "instructkit", "train", str(tmp_path / "data.jsonl"), "-m", str(env / "llava"), "-o", str(out),
           "--image-root", str(tmp_path / "img"), "--batch-size", "2", "--max-steps", "3", "--log-steps", "1",
           "--lr", "1e-3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env_vars, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stderr
    seen = {}
    for rank in (0, 1):
        lines = (out / f"seen.rank{rank}.jsonl").read_text().splitlines()
        assert [json.loads(x)["step"] for x in lines] == [1, 2, 3]
        seen[rank] = [i for x in lines for i in json.loads(x)["rows"]]
    assert len(seen[0]) == len(seen[1]) == 6
    assert not set(seen[0]) & set(seen[1])
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    # the logged loss is over both ranks' rows: rank 0 alone never holds 4 rows a step
    assert all(r["tokens"] > 0 for r in log)
    assert (out / "model.safetensors").is_file()
