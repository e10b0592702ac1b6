"""Format readers and writers: each format written, sniffed and read back to the same records; rows as
other tools write them are understood; JSON lists stream across chunk boundaries; writes are atomic."""

from __future__ import annotations

import json

import pytest
from io_samples import edge_records, llava_compatible, multi_image, text_records, vqa_records, with_system

from instructkit.errors import FormatError, RowError
from instructkit.formats import (
    RecordReader,
    RecordWriter,
    RejectsWriter,
    detect_format,
    read_records,
    read_rows,
    write_records,
)
from instructkit.formats import _json as json_mod
from instructkit.records import UNSUPPORTED

TEXT_FORMATS = ["canonical", "llava", "sharegpt", "openai", "alpaca"]


def records_for(fmt):
    if fmt == "alpaca":
        return text_records(with_system=False) + edge_records()[1:]
    if fmt == "llava":
        return llava_compatible()
    return llava_compatible() + [multi_image(), with_system()]


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_write_then_read_back_is_identical(tmp_path, fmt, suffix):
    recs = records_for(fmt)
    out = tmp_path / f"data{suffix}"
    assert write_records(recs, out, fmt) == len(recs)
    reader = read_records(out, fmt)
    assert [r.model_dump() for r in reader] == [r.model_dump() for r in recs]
    assert reader.stats.read == len(recs) and reader.stats.ok == len(recs)
    first = out.read_bytes().lstrip()[:1]
    assert first == (b"[" if suffix == ".json" else b"{")


# Rows as the tools themselves write them (no instructkit keys), and what they must turn into.
FOREIGN = {
    "llava": (
        {"id": "000000033471", "image": "coco/train2017/000000033471.jpg", "conversations": [
            {"from": "human", "value": "What are the colors of the bus in the image?\n<image>"},
            {"from": "gpt", "value": "The bus in the image is white and red."}]},
        ["coco/train2017/000000033471.jpg"], "What are the colors of the bus in the image?\n<image>"),
    "sharegpt": (
        {"messages": [{"role": "user", "content": "<image>Who are they?"},
                      {"role": "assistant", "content": "They're Kane and Gretzka from Bayern Munich."}],
         "images": ["mllm_demo_data/1.jpg"]},
        ["mllm_demo_data/1.jpg"], "<image>Who are they?"),
    "openai": (
        {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Compare "}, {"type": "image_url", "image_url": {"url": "a.png"}},
            {"type": "text", "text": " and "}, {"type": "image_url", "image_url": {"url": "b.png"}}]},
            {"role": "assistant", "content": "The first is brighter."}]},
        ["a.png", "b.png"], "Compare <image> and <image>"),
    "alpaca": (
        {"instruction": "Give three tips for staying healthy.", "input": "", "output": "1. Eat well..."},
        [], "Give three tips for staying healthy."),
}


@pytest.mark.parametrize("fmt", sorted(FOREIGN))
@pytest.mark.parametrize("container", ["jsonl", "json"])
def test_foreign_rows_are_detected_and_read(tmp_path, fmt, container):
    row, images, user = FOREIGN[fmt]
    path = tmp_path / f"in.{container}"
    if container == "json":
        path.write_text(json.dumps([row, row], indent=2))
    else:
        path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    reader = RecordReader(path)
    assert reader.format == fmt
    assert fmt in reader.detected.sentence(path) and str(path) in reader.detected.sentence(path)
    recs = list(reader)
    assert len(recs) == 2
    assert recs[0].images == images
    assert recs[0].messages[0].content == user
    if "id" in row:
        assert recs[0].id == row["id"]


def test_sharegpt_classic_spelling_and_system_and_unknown_keys(tmp_path):
    row = {"conversations": [{"from": "human", "value": "<image>What is this?"}, {"from": "gpt", "value": "A cat."}],
           "images": ["x.jpg"], "system": "Be brief.", "dataset_tag": "demo"}
    path = tmp_path / "lf.json"
    path.write_text(json.dumps([row]))
    rec = next(iter(read_records(path)))
    assert read_records(path).format == "sharegpt"
    assert rec.system == "Be brief." and rec.images == ["x.jpg"]
    assert rec.meta == {"fields": {"dataset_tag": "demo"}}
    # The unknown key goes back out at the top level.
    write_records([rec], tmp_path / "out.json", "sharegpt")
    assert json.loads((tmp_path / "out.json").read_text())[0]["dataset_tag"] == "demo"


def test_alpaca_input_and_history():
    from instructkit.formats.alpaca import dump, parse
    from instructkit.records import make_record

    rec = make_record(parse({"instruction": "Sum.", "input": "2 3", "output": "5", "history": [["hi", "hello"]]}))
    assert [m.content for m in rec.messages] == ["hi", "hello", "Sum.\n\n2 3", "5"]
    out = dump(rec, lean=True)
    assert out["history"] == [["hi", "hello"]] and out["output"] == "5"


def test_lean_drops_own_keys(tmp_path):
    recs = vqa_records()[:2]
    write_records(recs, tmp_path / "lean.json", "llava", lean=True)
    rows = json.loads((tmp_path / "lean.json").read_text())
    assert set(rows[0]) == {"id", "image", "conversations"}


def test_forced_format_overrides_sniffing(tmp_path):
    path = tmp_path / "d.jsonl"
    write_records(text_records()[:3], path, "sharegpt")
    reader = read_records(path, "sharegpt")
    assert reader.detected.reason == "forced with --from"
    assert len(list(reader)) == 3


def test_output_format_from_name(tmp_path):
    recs = vqa_records()[:2]
    write_records(recs, tmp_path / "x.jsonl")
    write_records(recs, tmp_path / "x.json")
    assert detect_format(tmp_path / "x.jsonl").format == "canonical"
    assert detect_format(tmp_path / "x.json").format == "llava"
    with pytest.raises(FormatError, match="use --to"):
        RecordWriter(tmp_path / "x.txt")
    with pytest.raises(FormatError, match="unknown format 'yaml'"):
        RecordWriter(tmp_path / "x.jsonl", "yaml")


def test_json_list_streams_elements_across_tiny_chunks(tmp_path, monkeypatch):
    recs = llava_compatible()
    path = tmp_path / "big.json"
    write_records(recs, path, "llava")
    # Pretty-printed too, so elements span many lines and chunks; numbers may be cut at a chunk end.
    rows = json.loads(path.read_text())
    rows.append({"conversations": [{"from": "human", "value": "n?"}, {"from": "gpt", "value": "1"}],
                 "meta": {"n": 1234567890123}})
    path.write_text(json.dumps(rows, indent=3, ensure_ascii=False))
    for chunk in (1, 3, 7, 64):
        monkeypatch.setattr(json_mod, "CHUNK", chunk)
        reader = read_records(path)
        got = list(reader)
        assert [r.model_dump() for r in got[:-1]] == [r.model_dump() for r in recs]
        assert got[-1].meta == {"n": 1234567890123}
    # Line numbers point at the element's first line.
    lines = [line for line, _ in json_mod.iter_json_array(path)]
    text_lines = path.read_text().split("\n")
    assert all(text_lines[n - 1].strip() == "{" for n in lines)


def test_json_list_memory_is_one_element_plus_a_chunk(tmp_path, monkeypatch):
    # The window never holds much more than the element being parsed.
    path = tmp_path / "l.json"
    n = write_records(vqa_records() * 20, path, "llava")
    monkeypatch.setattr(json_mod, "CHUNK", 256)
    sizes = []
    real = json_mod.json.JSONDecoder.raw_decode

    def spy(self, s, idx=0):
        sizes.append(len(s))
        return real(self, s, idx)

    monkeypatch.setattr(json_mod.json.JSONDecoder, "raw_decode", spy)
    assert sum(1 for _ in json_mod.iter_json_array(path)) == n
    assert len(sizes) >= n
    assert max(sizes) < 2 * 256 + 600 < path.stat().st_size / 20


def test_read_rows_tables(tmp_path):
    (tmp_path / "a.csv").write_text("question,answer\nWhat?,That\n\"a, b\",c\n")
    (tmp_path / "a.tsv").write_text("q\ta\nx\ty\n")
    assert list(read_rows(tmp_path / "a.csv")) == [(2, {"question": "What?", "answer": "That"}),
                                                   (3, {"question": "a, b", "answer": "c"})]
    assert list(read_rows(tmp_path / "a.tsv")) == [(2, {"q": "x", "a": "y"})]
    (tmp_path / "b.jsonl").write_text('{"q": 1}\n\n{"q": 2}\n')
    assert list(read_rows(tmp_path / "b.jsonl")) == [(1, {"q": 1}), (3, {"q": 2})]


# ---- atomic writes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["out.jsonl", "out.json"])
def test_error_mid_write_keeps_previous_file_and_leaves_no_temp(tmp_path, name):
    path = tmp_path / name
    write_records(vqa_records()[:3], path)
    before = path.read_bytes()

    def boom():
        yield from vqa_records()
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_records(boom(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_error_mid_write_leaves_no_file_when_none_existed(tmp_path):
    path = tmp_path / "new.json"
    with pytest.raises(RowError) as info:
        write_records([*vqa_records()[:2], multi_image()], path, "llava")
    assert info.value.reason == UNSUPPORTED and info.value.row == 2
    assert list(tmp_path.iterdir()) == []


def test_rejects_writer_is_atomic_and_counts(tmp_path):
    path = tmp_path / "rej.jsonl"
    with RejectsWriter(path) as rw:
        rw.write(RowError("bad-json", "broken", file="f", line=3), b"{oops\n")
        rw.write(RowError("image-count", "n", row=1), {"a": 1})
        assert not path.exists()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {"reason": "bad-json", "error": "broken", "file": "f", "line": 3, "row": None,
                       "data": "{oops"}
    assert rw.counts == {"bad-json": 1, "image-count": 1} and rw.total == 2


def test_sniffing_tells_canonical_from_sharegpt_with_the_same_keys(tmp_path):
    recs = text_records()[:3]
    write_records(recs, tmp_path / "c.jsonl", "canonical")
    write_records(recs, tmp_path / "s.jsonl", "sharegpt")
    assert detect_format(tmp_path / "c.jsonl").format == "canonical"
    assert detect_format(tmp_path / "s.jsonl").format == "sharegpt"
    assert [r.model_dump() for r in read_records(tmp_path / "s.jsonl")] == [r.model_dump() for r in recs]


def test_llama_factory_text_only_sharegpt_keeps_its_system_prompt(tmp_path):
    # LLaMA-Factory's text-only ShareGPT rows have `conversations` and a `system` string but no `images`:
    # the system prompt must become the system turn, not a stray key in meta.
    rows = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}],
             "system": "You are nice.", "tools": ""},
            {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]}]
    path = tmp_path / "lf.json"
    path.write_text(json.dumps(rows))
    reader = read_records(path)
    recs = list(reader)
    assert reader.format == "sharegpt"
    assert recs[0].system == "You are nice." and recs[0].meta == {"fields": {"tools": ""}}
    assert recs[1].system is None
    # A later row with a system prompt in a file sniffed as LLaVA keeps it too.
    path.write_text(json.dumps(rows[::-1]))
    assert [r.system for r in read_records(path)] == [None, "You are nice."]


def test_openai_fine_tuning_rows_with_plain_string_content_are_detected_as_openai(tmp_path):
    row = {"messages": [{"role": "system", "content": "Marv is sarcastic."},
                        {"role": "user", "content": "Capital of France?"},
                        {"role": "assistant", "content": "Paris, obviously."}]}
    path = tmp_path / "ft.jsonl"
    path.write_text(json.dumps(row) + "\n")
    reader = read_records(path)
    (rec,) = list(reader)
    assert reader.format == "openai" and rec.system == "Marv is sarcastic."


def test_foreign_meta_that_cannot_take_unknown_keys_is_a_row_error_not_a_crash_or_a_loss(tmp_path):
    conv = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]
    rows = [{"conversations": conv, "meta": "a note", "foo": 1},             # meta not an object
            {"conversations": conv, "meta": {"fields": 3}, "foo": 1},         # meta.fields taken
            {"conversations": conv, "meta": {"fields": {"bar": 2}}, "foo": 1}]  # merges: nothing lost
    path = tmp_path / "m.json"
    path.write_text(json.dumps(rows))
    reader = read_records(path, on_error="skip")
    recs = list(reader)
    assert reader.stats.rejected == {"wrong-type": 2}
    assert [r.meta for r in recs] == [{"fields": {"bar": 2, "foo": 1}}]
    with pytest.raises(RowError, match=r"m.json:1: 'meta' must be an object"):
        list(read_records(path))


def test_the_example_rows_in_docs_formats_are_what_the_writers_write(tmp_path):
    import re
    from pathlib import Path

    from instructkit.records import Record

    doc = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text(encoding="utf-8")
    blocks = dict(zip(["canonical", "llava", "sharegpt", "openai", "alpaca"],
                      re.findall(r"```json\n(.*?)\n```", doc, re.S)))
    rec = Record.model_validate_json(blocks["canonical"])
    for fmt in ("canonical", "llava", "sharegpt", "openai"):
        write_records([rec], tmp_path / f"{fmt}.jsonl", fmt)
        assert (tmp_path / f"{fmt}.jsonl").read_text() == json.dumps(json.loads(blocks[fmt]),
                                                                  separators=(",", ":"),
                                                                  ensure_ascii=False) + "\n", fmt
        assert [r.model_dump() for r in read_records(tmp_path / f"{fmt}.jsonl")] == [rec.model_dump()]
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text(blocks["alpaca"] + "\n")
    (text,) = list(read_records(alpaca))
    write_records([text], tmp_path / "a2.jsonl", "alpaca")
    assert json.loads((tmp_path / "a2.jsonl").read_text()) == json.loads(blocks["alpaca"])


def test_trl_style_image_parts_without_url_take_the_rows_images_in_order(tmp_path):
    # TRL / Hugging Face VLM rows: {"type": "image"} parts mark where each entry of `images` goes.
    row = {"messages": [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Compare with "},
                                     {"type": "image", "image": None}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Same cat."}]}],
        "images": ["a.jpg", "b.jpg"]}
    path = tmp_path / "trl.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (rec,) = list(read_records(path))
    assert rec.images == ["a.jpg", "b.jpg"]
    assert rec.messages[0].content == "<image>Compare with <image>" and rec.messages[1].content == "Same cat."
    # One marker too few for the images is the usual image-count error, naming the line.
    row["messages"][0]["content"] = row["messages"][0]["content"][:2]
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(RowError, match=r"trl.jsonl:1: 1 '<image>' placeholder\(s\) but 2 image\(s\)"):
        list(read_records(path))


def test_sharegpt_file_sniffed_as_llava_from_a_bare_text_row_still_reads_later_images(tmp_path):
    # LLaMA-Factory files often start with a text-only row that has neither `images` nor `system`: the file
    # is sniffed as llava, and the later rows' `images` lists must still be read as images.
    rows = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
            {"conversations": [{"from": "human", "value": "<image>Who?"}, {"from": "gpt", "value": "Kane."}],
             "images": ["mllm_demo_data/1.jpg"]}]
    path = tmp_path / "lf.json"
    path.write_text(json.dumps(rows))
    reader = read_records(path)
    recs = list(reader)
    assert reader.format == "llava"
    assert recs[1].images == ["mllm_demo_data/1.jpg"] and recs[1].meta == {}


def test_llava_row_with_both_image_and_images_is_an_error_not_a_silent_pick(tmp_path):
    conv = [{"from": "human", "value": "<image>Who?"}, {"from": "gpt", "value": "Kane."}]
    path = tmp_path / "l.json"
    path.write_text(json.dumps([{"conversations": conv[:1] + conv[1:], "image": "a.jpg"},
                                {"conversations": conv, "image": "a.jpg", "images": ["b.jpg"]}]))
    with pytest.raises(RowError, match="both 'image' and 'images'"):
        list(read_records(path))


def test_a_killed_writers_temporary_file_is_removed_by_the_next_successful_write(tmp_path):
    import os
    import time

    from instructkit.formats.atomic import atomic_write

    target = tmp_path / "out.jsonl"
    stale = tmp_path / ".out.jsonl.abc1_3de.tmp"
    stale.write_bytes(b"half a file")
    past = time.time() - 60
    os.utime(stale, (past, past))
    other = tmp_path / ".other.jsonl.abc1_3de.tmp"
    other.write_bytes(b"someone else's")
    os.utime(other, (past, past))
    sibling = tmp_path / ".out.jsonl.rejects.jsonl.abc1_3de.tmp"   # another target's live temp file
    sibling.write_bytes(b"rejects in progress")
    os.utime(sibling, (past, past))
    with atomic_write(target) as fh:
        fh.write(b"done\n")
    assert target.read_bytes() == b"done\n"
    assert not stale.exists()
    assert other.exists() and sibling.exists()
