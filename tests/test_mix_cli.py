"""Input specs, recipes and the ``instructkit mix`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mix_samples import write_llava, write_text
from typer.testing import CliRunner

from instructkit.cli import app
from instructkit.errors import UsageError
from instructkit.mix import load_recipe, parse_input

runner = CliRunner()


def test_parse_input_spec():
    s = parse_input("data/llava.json:w=0.7,cap=100_000,mult=2,name=vis,fmt=llava")
    assert (s.path, s.name, s.weight, s.cap, s.mult, s.fmt) == (Path("data/llava.json"), "vis", 0.7, 100000, 2,
                                                                "llava")
    plain = parse_input("text.jsonl")
    assert (plain.name, plain.weight, plain.cap, plain.mult) == ("text", None, None, 1)
    colon = parse_input("s3:bucket/file.jsonl")         # a colon that is not followed by options
    assert colon.path == Path("s3:bucket/file.jsonl")


@pytest.mark.parametrize(("text", "message"), [
    ("a.jsonl:w=abc", "w='abc' is not a number"),
    ("a.jsonl:w=-1", "negative"),
    ("a.jsonl:cap=1.5", "not a whole number"),
    ("a.jsonl:mult=0", "mult must be 1 or more"),
    ("a.jsonl:size=3", "unknown input option 'size'"),
    ("a.jsonl:w=1,w=2", "given twice"),
    ("a.jsonl:w=nan", "not a finite number"),
])
def test_bad_input_specs(text, message):
    with pytest.raises(UsageError, match=message):
        parse_input(text)


def test_recipe_paths_are_relative_to_the_recipe(tmp_path):
    (tmp_path / "r").mkdir()
    recipe = tmp_path / "r" / "mix.yaml"
    recipe.write_text("strategy: interleave\nstopping: all-exhausted\nseed: 3\noutput: out.jsonl\n"
                      "inputs:\n  - path: data/text.jsonl\n    w: 0.3\n    name: t\n  - data/llava.json:w=0.7\n")
    data = load_recipe(recipe)
    assert [s.path for s in data["inputs"]] == [tmp_path / "r/data/text.jsonl", tmp_path / "r/data/llava.json"]
    assert [s.weight for s in data["inputs"]] == [0.3, 0.7]
    assert data["output"] == tmp_path / "r/out.jsonl" and data["seed"] == 3
    recipe.write_text("inputs: []\nstratgy: shuffle\n")
    with pytest.raises(UsageError, match="unknown recipe keys \\['stratgy'\\]"):
        load_recipe(recipe)


def test_cli_mix_writes_output_manifest_and_table(tmp_path):
    text = write_text(tmp_path / "text.jsonl", 300)
    llava = write_llava(tmp_path / "llava.json", 60)
    out = tmp_path / "mix.jsonl"
    res = runner.invoke(app, ["mix", f"{text}:w=0.5", f"{llava}:w=0.5,name=vis", "-o", str(out),
                              "--strategy", "interleave", "--stopping", "first-exhausted", "--seed", "4"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "mix.manifest.json").read_text())
    assert manifest["seed"] == 4 and manifest["parameters"]["stopping"] == "first-exhausted"
    assert len(out.read_text().splitlines()) == manifest["totals"]["rows"]
    assert "reading as llava" in res.output and "dropped" in res.output and "vis" in res.output
    text_line = next(line for line in res.output.splitlines() if line.startswith("text "))
    assert str(manifest["inputs"][0]["dropped"]) in text_line.split()


def test_cli_recipe_with_command_line_override(tmp_path):
    write_text(tmp_path / "text.jsonl", 100)
    write_llava(tmp_path / "llava.json", 40)
    recipe = tmp_path / "mix.yaml"
    recipe.write_text("strategy: sequential\noutput: seq.jsonl\ninputs: [text.jsonl, llava.json]\n")
    res = runner.invoke(app, ["mix", "--recipe", str(recipe), "--stages", "image,text"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "seq.jsonl").read_text().splitlines()]
    assert [bool(r["images"]) for r in rows] == [True] * 40 + [False] * 100


@pytest.mark.parametrize(("args", "message"), [
    (["{t}:w=x", "-o", "{o}"], "is not a number"),
    (["{t}:w=0", "{l}:w=0", "-o", "{o}", "--strategy", "interleave"], "sum to zero"),
    (["{t}", "{l}", "-o", "{o}", "--batches", "ratio", "--batch-size", "10", "--image-fraction", "0.9",
      "--size", "1000"], "needs 900 image rows"),
    (["{t}", "{bad}", "-o", "{o}"], "unknown format"),
    (["{t}"], "no output"),
])
def test_cli_bad_input_exits_1_with_a_message(tmp_path, args, message):
    t = write_text(tmp_path / "text.jsonl", 100)
    lv = write_llava(tmp_path / "llava.json", 10)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"foo": 1}]')
    o = tmp_path / "o.jsonl"
    res = runner.invoke(app, ["mix", *[a.format(t=t, l=lv, o=o, bad=bad) for a in args]])
    assert res.exit_code == 1
    assert message in res.output
    assert not o.exists()


def test_cli_skip_writes_rejects_and_manifest_where_asked(tmp_path):
    text = write_text(tmp_path / "text.jsonl", 20)
    with open(text, "ab") as fh:
        fh.write(b'{"not": "a record"}\n')
    (tmp_path / "work").mkdir()
    res = runner.invoke(app, ["mix", str(text), "-o", str(tmp_path / "o.jsonl"), "--on-error", "skip",
                              "--rejects", str(tmp_path / "bad.jsonl"), "--manifest", str(tmp_path / "m.json"),
                              "--tmp-dir", str(tmp_path / "work"), "--strategy", "concat"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["inputs"][0]["rejected"] == {"missing-field": 1}
    assert len((tmp_path / "bad.jsonl").read_text().splitlines()) == 1
    assert manifest["totals"]["rows"] == 20
    assert list((tmp_path / "work").iterdir()) == []          # temp files cleaned up


def test_cli_weights_without_strategy_interleave(tmp_path):
    text = write_text(tmp_path / "text.jsonl", 400)
    llava = write_llava(tmp_path / "llava.json", 100)
    out = tmp_path / "mix.jsonl"
    res = runner.invoke(app, ["mix", f"{text}:w=0.3", f"{llava}:w=0.7,cap=100000", "-o", str(out)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "mix.manifest.json").read_text())
    assert manifest["parameters"]["strategy"] == "interleave"
    assert [i["probability"] for i in manifest["inputs"]] == [0.3, 0.7]
    assert manifest["totals"]["rows"] == 500                     # without replacement: every row once
    assert any("cap 100000 >= its 100 valid rows" in n for n in manifest["notes"])


@pytest.mark.parametrize(("line", "message"), [
    ("size: abc", "size='abc' is not a whole number"),
    ("dedup: 'no'", "dedup must be true or false, not 'no'"),
    ("allow_repeat: 1", "allow_repeat must be true or false"),
    ("batch_size: 2.5", "batch_size=2.5 is not a whole number"),
    ("image_fraction: half", "image_fraction='half' is not a number"),
    ("strategy: 3", "strategy must be a string"),
])
def test_recipe_option_values_are_type_checked(tmp_path, line, message):
    # A wrong type in YAML must be a clear error naming the recipe, never a traceback or a truthy string
    # silently switching an option on.
    recipe = tmp_path / "mix.yaml"
    recipe.write_text(f"{line}\ninputs: [a.jsonl]\n")
    with pytest.raises(UsageError, match=message) as exc:
        load_recipe(recipe)
    assert str(recipe) in str(exc.value)


def test_recipe_stages_may_be_a_yaml_list(tmp_path):
    recipe = tmp_path / "mix.yaml"
    recipe.write_text("strategy: sequential\nstages: [image, text]\nsize: 4\nimage_fraction: 1\n"
                      "inputs: [a.jsonl]\n")
    data = load_recipe(recipe)
    assert data["stages"] == "image,text" and data["size"] == 4 and data["image_fraction"] == 1.0


def test_mix_to_hf_embeds_images_from_image_root(tmp_path):
    # HF output embeds image bytes, so mix needs to know where relative image paths point.
    from PIL import Image

    from instructkit.formats import read_records
    from instructkit.mix import MixOptions
    from instructkit.mix.job import run_mix

    (tmp_path / "pics" / "img").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "pics" / "img" / f"{i}.jpg")
    text = write_text(tmp_path / "text.jsonl", 6)
    llava = write_llava(tmp_path / "llava.json", 4)
    out = tmp_path / "ds"
    run_mix(MixOptions(inputs=[parse_input(str(text)), parse_input(str(llava))], strategy="concat", to_fmt="hf"),
            out, image_root=tmp_path / "pics", log=None)
    recs = list(read_records(out))
    assert len(recs) == 10 and sum(1 for r in recs if r.images) == 4
    assert (out.with_name("ds_images") / "img" / "2.jpg").read_bytes() == (tmp_path / "pics/img/2.jpg").read_bytes()


def test_cli_mix_row_the_output_format_cannot_hold_names_its_id_and_source(tmp_path):
    two = tmp_path / "two.jsonl"
    two.write_text(json.dumps({"id": "pair1", "images": ["a.jpg", "b.jpg"], "messages": [
        {"role": "user", "content": "<image><image>Same?"}, {"role": "assistant", "content": "No."}],
        "source": "", "task": "", "meta": {}}) + "\n")
    text = write_text(tmp_path / "text.jsonl", 3)
    res = runner.invoke(app, ["mix", str(text), f"{two}:name=pairs", "-o", str(tmp_path / "out.json"),
                              "--strategy", "concat"])
    assert res.exit_code == 1
    assert "id 'pair1'" in res.stderr and "source 'pairs'" in res.stderr and "one image per row" in res.stderr
    assert not (tmp_path / "out.json").exists()


def test_recipe_input_in_command_line_form_names_the_recipe_in_errors(tmp_path):
    recipe = tmp_path / "mix.yaml"
    recipe.write_text("inputs:\n  - a.jsonl:w=abc\n")
    with pytest.raises(UsageError, match=r"mix.yaml: inputs\[0\]: a.jsonl:w=abc: w='abc' is not a number"):
        load_recipe(recipe)


def test_missing_tmp_dir_is_a_usage_error(tmp_path):
    text = write_text(tmp_path / "text.jsonl", 3)
    res = runner.invoke(app, ["mix", str(text), "-o", str(tmp_path / "o.jsonl"), "--tmp-dir",
                              str(tmp_path / "nope")])
    assert res.exit_code == 1 and f"--tmp-dir {tmp_path / 'nope'} is not a folder" in res.stderr


def test_cli_image_root_lets_hf_output_embed_images(tmp_path):
    from PIL import Image

    from instructkit.formats import read_records, write_records
    from instructkit.records import conversation

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "imgs" / "a.jpg")
    src = tmp_path / "in.jsonl"
    write_records([conversation("What colour?", "Red.", images=["a.jpg"]), conversation("Hi", "Hello.")], src)
    out = tmp_path / "out.parquet"
    res = runner.invoke(app, ["mix", str(src), "-o", str(out), "--image-root", str(tmp_path / "imgs")])
    assert res.exit_code == 0, res.output
    assert sorted(r.images for r in read_records(out)) == [[], ["a.jpg"]]
    res = runner.invoke(app, ["mix", str(src), "-o", str(tmp_path / "out2.parquet")])
    assert res.exit_code == 1 and "a.jpg" in res.output
