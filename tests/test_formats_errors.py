"""Bad input, one test each: the reader raises (fail mode) or rejects (skip mode) with a reason and the
file and line; nothing is dropped without being counted."""

from __future__ import annotations

import json

import pytest
from io_samples import vqa_records

from instructkit.errors import FormatError, RowError
from instructkit.formats import RecordReader, RejectsWriter, read_records, write_records
from instructkit.records import (
    BAD_JSON,
    BAD_ROLE,
    EMPTY_FILE,
    IMAGE_COUNT,
    IMAGE_ESCAPES_ROOT,
    MISSING_FIELD,
    NOT_UTF8,
    WRONG_TYPE,
)


def llava_row(**kw):
    row = {"id": "x", "image": "a.jpg", "conversations": [{"from": "human", "value": "<image>\nWhat?"},
                                                          {"from": "gpt", "value": "That."}]}
    row.update(kw)
    return row


def write_lines(path, *lines: bytes | dict):
    path.write_bytes(b"".join((json.dumps(x).encode() if isinstance(x, dict) else x) + b"\n" for x in lines))
    return path


def first_error(path, fmt=None) -> RowError:
    with pytest.raises(RowError) as info:
        list(read_records(path, fmt))
    return info.value


@pytest.mark.parametrize("fmt", ["canonical", "llava"])
def test_malformed_json_line(tmp_path, fmt):
    good = vqa_records()[0].model_dump() if fmt == "canonical" else llava_row()
    path = write_lines(tmp_path / "d.jsonl", good, b'{"id": "y", "conversations": [', good)
    err = first_error(path)
    assert (err.reason, err.where) == (BAD_JSON, f"{path}:2")
    assert "malformed JSON" in str(err) and "end of the line" in str(err)


def test_empty_file(tmp_path):
    for name, text in (("a.jsonl", ""), ("b.jsonl", " \n\n"), ("c.json", "\ufeff\n")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(RowError) as info:
            RecordReader(path)
        assert info.value.reason == EMPTY_FILE and info.value.file == str(path)
        assert str(info.value) == f"{path}: file is empty [empty-file]"
    (tmp_path / "e.json").write_text("[]")
    with pytest.raises(FormatError, match=r"e\.json: the JSON list is empty"):
        RecordReader(tmp_path / "e.json")
    assert list(read_records(tmp_path / "e.json", "llava")) == []


def test_non_utf8_bytes_in_lines_and_lists(tmp_path):
    good = json.dumps(llava_row()).encode()
    bad = good.replace(b"What?", b"Wh\xe4t?")
    path = write_lines(tmp_path / "d.jsonl", good, good, bad)
    err = first_error(path)
    assert (err.reason, err.where) == (NOT_UTF8, f"{path}:3")
    assert "column" in str(err)
    listed = tmp_path / "d.json"
    listed.write_bytes(b"[\n" + good + b",\n" + bad + b"\n]\n")
    reader = read_records(listed)
    with pytest.raises(RowError) as info:
        for _ in reader:
            pass
    assert (info.value.reason, info.value.where) == (NOT_UTF8, f"{listed}:3")
    assert reader.stats.ok == 1   # the element before the bad bytes was still read


def test_missing_required_field(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", llava_row(), {"id": "y", "image": "a.jpg"})
    err = first_error(path, "llava")
    assert (err.reason, err.where) == (MISSING_FIELD, f"{path}:2")
    assert "'conversations'" in str(err)
    canon = write_lines(tmp_path / "c.jsonl", vqa_records()[0].model_dump(),
                        {k: v for k, v in vqa_records()[0].model_dump().items() if k != "messages"})
    err = first_error(canon, "canonical")
    assert (err.reason, err.where) == (MISSING_FIELD, f"{canon}:2") and "'messages'" in str(err)


@pytest.mark.parametrize("bad", [
    {"image": 7},
    {"conversations": "hello"},
    {"conversations": [{"from": "human", "value": ["<image>"]}, {"from": "gpt", "value": "x"}]},
])
def test_wrong_type(tmp_path, bad):
    path = write_lines(tmp_path / "d.jsonl", llava_row(), llava_row(**bad))
    err = first_error(path)
    assert (err.reason, err.where) == (WRONG_TYPE, f"{path}:2")


def test_unhashable_role_is_a_bad_role_not_a_crash(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", llava_row(), llava_row(
        conversations=[{"from": ["human"], "value": "x"}, {"from": "gpt", "value": "y"}]))
    err = first_error(path)
    assert (err.reason, err.where) == (BAD_ROLE, f"{path}:2")


def test_image_count_mismatch(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", llava_row(), llava_row(
        conversations=[{"from": "human", "value": "<image><image>\nWhat?"}, {"from": "gpt", "value": "x"}]))
    err = first_error(path)
    assert (err.reason, err.where) == (IMAGE_COUNT, f"{path}:2")
    assert "2 '<image>' placeholder(s) but 1 image(s)" in str(err)


def test_image_path_escaping_root(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", llava_row(), llava_row(image="imgs/../../../secret.jpg"))
    err = first_error(path)
    assert (err.reason, err.where) == (IMAGE_ESCAPES_ROOT, f"{path}:2")
    assert "secret.jpg" in str(err)


def test_unknown_format(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", {"question": "q", "answer": "a"})
    with pytest.raises(FormatError) as info:
        RecordReader(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: unknown format") and "['answer', 'question']" in msg and "--from" in msg
    with pytest.raises(FormatError, match="unknown format 'yaml'"):
        RecordReader(path, "yaml")
    with pytest.raises(FormatError, match="no such file"):
        RecordReader(tmp_path / "nope.jsonl")


def test_skip_mode_counts_and_rejects_every_bad_row(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", llava_row(), b"{nope", llava_row(image=3), b"\xff\xfe",
                       llava_row(id="z"))
    with RejectsWriter(tmp_path / "rej.jsonl") as rej:
        reader = RecordReader(path, on_error="skip", rejects=rej)
        ids = [r.id for r in reader]
    assert ids == ["x", "z"]
    assert reader.stats.read == 5 and reader.stats.ok == 2
    assert reader.stats.rejected == {BAD_JSON: 1, WRONG_TYPE: 1, NOT_UTF8: 1}
    rows = [json.loads(line) for line in (tmp_path / "rej.jsonl").read_text().splitlines()]
    assert [(r["reason"], r["line"]) for r in rows] == [(BAD_JSON, 2), (WRONG_TYPE, 3), (NOT_UTF8, 4)]
    assert rows[1]["data"]["image"] == 3 and rows[2]["data"] == "\\xff\\xfe"


def test_reader_rejects_on_error_values(tmp_path):
    path = tmp_path / "d.jsonl"
    write_records(vqa_records()[:1], path)
    with pytest.raises(FormatError, match="on_error"):
        RecordReader(path, on_error="ignore")


def test_table_rows_name_their_first_line_and_bad_bytes_their_line(tmp_path):
    from instructkit.formats import read_rows

    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbfquestion,answer\nq1,a1\n"two\nlines",a2\nq3,a3\n')
    assert [n for n, _ in read_rows(path)] == [2, 3, 5]
    bad = tmp_path / "t.tsv"
    bad.write_bytes(b"question\tanswer\nq1\ta1\nq\xe9\ta\n")
    rows = read_rows(bad)
    assert next(rows) == (2, {"question": "q1", "answer": "a1"})
    with pytest.raises(RowError) as exc:
        next(rows)
    assert (exc.value.reason, exc.value.line) == ("not-utf8", 3) and str(bad) in str(exc.value)


@pytest.mark.parametrize("text", [None, 7, ["a"]])
def test_content_part_text_of_the_wrong_type_is_a_row_error(tmp_path, text):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"messages": [
        {"role": "user", "content": [{"type": "text", "text": text}, {"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": "x"}]}) + "\n")
    with pytest.raises(RowError) as exc:
        list(read_records(path))
    assert exc.value.reason == WRONG_TYPE and exc.value.line == 1 and "content[0]" in str(exc.value)
