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
