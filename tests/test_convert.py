"""`convert`: the sample goes canonical -> LLaVA -> ShareGPT -> OpenAI -> canonical without losing anything;
rows a target cannot hold are errors naming the input row, or rejects-file rows with --on-error skip."""

from __future__ import annotations

import json

import pytest
from io_samples import SEEDS, llava_compatible, multi_image, vqa_records, with_system
from typer.testing import CliRunner

from instructkit.cli import app
from instructkit.errors import RowError, UsageError
from instructkit.formats import read_records, write_records
from instructkit.formats.convert import convert_file
from instructkit.records import BAD_JSON, UNSUPPORTED, conversation

runner = CliRunner()


def dumps(records):
    return [r.model_dump() for r in records]


def cli(*args):
    return runner.invoke(app, ["convert", *map(str, args)])


def test_chain_through_every_format_is_lossless(tmp_path):
    sample = tmp_path / "sample.jsonl"
    recs = llava_compatible()
    write_records(recs, sample)
    chain = [("llava", "a.json"), ("sharegpt", "b.json"), ("openai", "c.jsonl"), ("canonical", "d.jsonl")]
    src = sample
    for fmt, name in chain:
        out = tmp_path / name
        result = cli(src, "-o", out, "--to", fmt)
        assert result.exit_code == 0, result.output
        # The reader says what it picked, on stderr; stdout stays clean.
        assert f"{src}: reading as " in result.stderr and result.stdout == ""
        assert f"read {len(recs)} -> written {len(recs)} ({fmt})" in result.stderr
        assert dumps(read_records(out)) == dumps(recs), fmt
        src = out
    assert (tmp_path / "d.jsonl").read_bytes() == sample.read_bytes()
    # Each file is recognised as what it was written as (sharegpt rows carry canonical's keys, in another order).
    for name, fmt in (("a.json", "llava"), ("b.json", "sharegpt"), ("c.jsonl", "openai"), ("d.jsonl", "canonical")):
        assert read_records(tmp_path / name).format == fmt


def test_seed_conversations_round_trip_and_system_turns_are_rejected_by_llava(tmp_path):
    seeds = SEEDS / "text/sharegpt.json"
    n = sum(1 for _ in read_records(seeds))
    n_system = sum(1 for r in read_records(seeds) if r.system is not None)
    assert n_system > 0
    # Fail mode: the first system turn stops the run, naming the input row; no output appears.
    result = cli(seeds, "-o", tmp_path / "llava.json", "--to", "llava")
    assert result.exit_code == 1
    assert f"{seeds}:" in result.stderr and "cannot be written as llava" in result.stderr
    assert "[unsupported-by-format]" in result.stderr
    assert not (tmp_path / "llava.json").exists()
    # Skip mode: every row ends as output or a rejects row with its reason.
    rej = tmp_path / "rej.jsonl"
    result = cli(seeds, "-o", tmp_path / "llava.json", "--to", "llava", "--on-error", "skip", "--rejects", rej)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in rej.read_text().splitlines()]
    assert len(rows) == n_system and {r["reason"] for r in rows} == {UNSUPPORTED}
    assert all(r["file"] == str(seeds) and r["line"] for r in rows)
    assert all(r["data"]["messages"][0]["role"] == "system" for r in rows)
    assert sum(1 for _ in read_records(tmp_path / "llava.json")) == n - n_system
    # Formats with system turns carry all of them both ways.
    for fmt, name in (("openai", "o.jsonl"), ("sharegpt", "s.json"), ("canonical", "c.jsonl")):
        assert cli(seeds, "-o", tmp_path / name, "--to", fmt).exit_code == 0
        assert dumps(read_records(tmp_path / name)) == dumps(read_records(seeds))


@pytest.mark.parametrize(("record", "fmt", "words"), [
    (multi_image(), "llava", "one image per row"),
    (with_system(), "alpaca", "no system turn"),
    (vqa_records()[0], "alpaca", "text-only"),
])
def test_row_the_target_cannot_hold_names_the_input_line(tmp_path, record, fmt, words):
    src = tmp_path / "in.jsonl"
    write_records([conversation("Hi.", "Hello."), record], src)  # row 1 fits every format
    out = tmp_path / "out.json"
    out.write_text("previous")
    with pytest.raises(RowError) as info:
        convert_file(src, out, to_fmt=fmt)
    err = info.value
    assert err.reason == UNSUPPORTED and err.where == f"{src}:2" and words in str(err)
    assert out.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.json"]


def test_skip_mode_accounts_for_every_row(tmp_path):
    good = vqa_records()[:3]
    src = tmp_path / "in.jsonl"
    write_records(good, src)
    with open(src, "ab") as fh:
        fh.write(b'{"broken\n')
        fh.write(multi_image().model_dump_json().encode() + b"\n")
    out = tmp_path / "out.json"
    funnel = convert_file(src, out, to_fmt="llava", on_error="skip")
    assert funnel["read"] == 5 and funnel["written"] == 3
    assert funnel["rejected"] == {BAD_JSON: 1, UNSUPPORTED: 1}
    rejects = tmp_path / "out.json.rejects.jsonl"
    assert funnel["rejects_file"] == str(rejects)
    rows = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["reason"], r["line"]) for r in rows] == [(BAD_JSON, 4), (UNSUPPORTED, 5)]
    assert rows[0]["data"] == '{"broken'
    assert funnel["read"] == funnel["written"] + sum(funnel["rejected"].values())


def test_options_are_checked(tmp_path):
    src = tmp_path / "in.jsonl"
    write_records(vqa_records()[:1], src)
    with pytest.raises(UsageError):
        convert_file(src, tmp_path / "o.jsonl", on_error="ignore")
    with pytest.raises(UsageError):
        convert_file(src, tmp_path / "o.jsonl", rejects=tmp_path / "r.jsonl")
    with pytest.raises(UsageError):
        convert_file(src, tmp_path / "o.jsonl", on_error="skip", rejects=src)
    result = cli(src, "-o", tmp_path / "o.jsonl", "--to", "yaml")
    assert result.exit_code == 1 and "unknown format 'yaml'" in result.stderr
    result = cli(src, "-o", tmp_path / "o.jsonl", "--from", "toml")
    assert result.exit_code == 1 and "unknown format 'toml'" in result.stderr
    result = cli(tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 1 and "no such file" in result.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_lean_output(tmp_path):
    src = tmp_path / "in.jsonl"
    write_records(vqa_records()[:2], src)
    out = tmp_path / "lean.json"
    assert cli(src, "-o", out, "--lean").exit_code == 0
    rows = json.loads(out.read_text())
    assert [set(r) for r in rows] == [{"id", "image", "conversations"}] * 2


def test_unwritable_output_is_an_error_naming_it_not_a_traceback(tmp_path):
    from typer.testing import CliRunner

    from instructkit.cli import app

    src = tmp_path / "in.jsonl"
    src.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], '
                   '"images": []}\n')
    (tmp_path / "file").write_text("not a folder")
    res = CliRunner().invoke(app, ["convert", str(src), "-o", str(tmp_path / "file" / "out.jsonl")])
    assert res.exit_code == 1 and f"{tmp_path / 'file' / 'out.jsonl'}: cannot write" in res.stderr
