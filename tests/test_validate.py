"""`validate`: one file with one planted error of each kind is reported reason by reason with file:line,
and the command exits non-zero; a clean file passes; images are checked from their headers."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from io_samples import SEEDS, image_path, llava_compatible
from typer.testing import CliRunner

from instructkit.cli import app
from instructkit.errors import FormatError, RowError
from instructkit.formats import write_records
from instructkit.images import check_image, resolve
from instructkit.quality.validate import validate_file
from instructkit.records import (
    BAD_JSON,
    EMPTY_FILE,
    IMAGE_CORRUPT,
    IMAGE_COUNT,
    IMAGE_ESCAPES_ROOT,
    IMAGE_MISSING,
    MISSING_FIELD,
    NOT_UTF8,
    WRONG_TYPE,
)

runner = CliRunner()


def row(images, user="<image>\nWhat is it?", answer="A thing.", **extra) -> bytes:
    data = {"id": "", "images": images, "messages": [{"role": "user", "content": user},
                                                     {"role": "assistant", "content": answer}],
            "source": "", "task": "", "meta": {}, **extra}
    return json.dumps(data).encode()


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    good = (SEEDS / image_path(1)).read_bytes()
    (root / "good.jpg").write_bytes(good)
    (root / "cut.jpg").write_bytes(good[: len(good) // 2])
    (root / "garbage.jpg").write_bytes(b"this is not an image at all" * 10)
    (tmp_path / "outside.jpg").write_bytes(good)
    os.symlink(tmp_path / "outside.jpg", root / "sneaky.jpg")
    return root


PLANTED = {  # line -> reason
    2: BAD_JSON,
    3: NOT_UTF8,
    4: MISSING_FIELD,
    5: WRONG_TYPE,
    6: IMAGE_COUNT,
    7: IMAGE_ESCAPES_ROOT,
    8: IMAGE_ESCAPES_ROOT,
    9: IMAGE_MISSING,
    10: IMAGE_CORRUPT,
    11: IMAGE_CORRUPT,
}


@pytest.fixture
def planted(tmp_path, image_root):
    lines = [
        row(["good.jpg"]),                                            # 1 fine
        b'{"id": "", "images": [], "messages": [',                    # 2 malformed JSON
        row([], user="caf\u00e9?").replace(b"caf\\u00e9", b"caf\xe9"),  # 3 latin-1 byte, not UTF-8
        b'{"id": "", "images": [], "source": "", "task": "", "meta": {}}',   # 4 no messages
        row([], user="x").replace(b'"task": ""', b'"task": 7'),       # 5 task is a number
        row(["good.jpg", "good.jpg"]),                                # 6 two images, one <image>
        row(["../../etc/passwd"]),                                    # 7 climbs out (schema rule)
        row(["sneaky.jpg"]),                                          # 8 symlink out of the root
        row(["nowhere.jpg"]),                                         # 9 file missing
        row(["cut.jpg"]),                                             # 10 truncated JPEG
        row(["garbage.jpg"]),                                         # 11 not an image
        row([], user="Text only?", answer="Yes."),                    # 12 fine
    ]
    path = tmp_path / "planted.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_library_report_names_every_planted_problem(planted, image_root):
    report = validate_file(planted, image_root=image_root)
    assert not report.ok
    assert report.rows == 12 and report.good_rows == 2
    got = {e.line: e.reason for e in report.shown}
    assert got == PLANTED
    assert all(e.file == str(planted) for e in report.shown)
    assert report.counts[IMAGE_ESCAPES_ROOT] == 2 and report.problems == len(PLANTED)
    assert report.images_checked == 5


def test_cli_prints_every_reason_with_line_and_exits_nonzero(planted, image_root):
    result = runner.invoke(app, ["validate", str(planted), "--image-root", str(image_root)])
    assert result.exit_code == 1, result.output
    out = result.stdout
    for line, reason in PLANTED.items():
        assert f"{planted}:{line}: " in out and f"[{reason}]" in out, (line, reason)
    for reason in set(PLANTED.values()):
        assert f"  {reason}" in out
    assert "rows: 12 read, 2 good, 10 with problems" in out


def test_cli_json_and_max_show(planted, image_root):
    result = runner.invoke(app, ["validate", str(planted), "--image-root", str(image_root), "--json",
                                 "--max-show", "3"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["problems"] == 10 and len(data["shown"]) == 3
    assert data["counts"][IMAGE_CORRUPT] == 2
    assert data["shown"][0]["where"] == f"{planted}:2"


def test_no_images_skips_file_checks(planted, image_root):
    report = validate_file(planted, image_root=image_root, check_images=False)
    assert {IMAGE_MISSING, IMAGE_CORRUPT}.isdisjoint(report.counts)
    assert report.images_checked == 0


def test_clean_file_passes_and_default_root_is_the_files_folder(tmp_path):
    shutil.copytree(SEEDS / "images", tmp_path / "images")
    path = tmp_path / "clean.json"
    write_records(llava_compatible(), path, "llava")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "OK: no problems found" in result.stdout
    assert "reading as llava" in result.stdout
    # The same file with the images elsewhere: every image row is reported missing.
    report = validate_file(path, image_root=tmp_path / "nothing-here")
    assert report.counts == {IMAGE_MISSING: sum(1 for r in llava_compatible() if r.images)}


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("  \n\n")
    report = validate_file(path)
    assert report.counts == {EMPTY_FILE: 1} and report.shown[0].file == str(path)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and f"{path}: file is empty [empty-file]" in result.stdout


def test_unknown_format_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text('{"question": "q", "answer": "a"}\n')
    with pytest.raises(FormatError, match=r"odd.jsonl: unknown format; the first row has keys \['answer', 'question'\]"):
        validate_file(path)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and "unknown format" in result.stderr


def test_broken_json_list_stops_with_line(tmp_path):
    path = tmp_path / "l.json"
    ok = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    path.write_text("[\n" + json.dumps(ok) + ",\n" + json.dumps(ok) + ",\n{\"conversations\": [}\n]")
    report = validate_file(path)
    assert report.good_rows == 2
    assert report.counts == {BAD_JSON: 1} and report.shown[0].line == 4
    assert report.stopped == str(report.shown[0])


# ---- images: header-only checks and root containment ------------------------------------------------

def test_check_image_reads_header(image_root):
    info = check_image(image_root / "good.jpg")
    assert (info.width, info.height, info.format) == (512, 512, "JPEG")
    for name, reason in (("cut.jpg", IMAGE_CORRUPT), ("garbage.jpg", IMAGE_CORRUPT), ("none.jpg", IMAGE_MISSING)):
        with pytest.raises(RowError) as exc:
            check_image(image_root / name)
        assert exc.value.reason == reason and name in str(exc.value)


def test_check_image_png_truncation(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30), "red").save(tmp_path / "a.png")
    assert check_image(tmp_path / "a.png").width == 40
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "b.png").write_bytes(data[:-12])
    with pytest.raises(RowError, match="truncated"):
        check_image(tmp_path / "b.png")


def test_resolve_keeps_paths_inside_root(image_root):
    assert resolve("good.jpg", image_root) == (image_root / "good.jpg").resolve()
    for bad in ("../outside.jpg", "../../x.jpg", "sneaky.jpg"):
        with pytest.raises(RowError) as exc:
            resolve(bad, image_root)
        assert exc.value.reason == IMAGE_ESCAPES_ROOT
    with pytest.raises(RowError) as exc:
        resolve("https://example.org/a.jpg", image_root)
    assert exc.value.reason == IMAGE_MISSING


def test_broken_first_line_does_not_hide_the_rest(tmp_path, image_root):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"broken\n' + row(["good.jpg"]) + b"\n" + row(["nowhere.jpg"]) + b"\n")
    report = validate_file(path, image_root=image_root)
    assert report.format == "canonical"
    assert [(e.line, e.reason) for e in report.shown] == [(1, BAD_JSON), (3, IMAGE_MISSING)]
    only_broken = tmp_path / "q.jsonl"
    only_broken.write_bytes(b'{"broken\n[1,\n')
    report = validate_file(only_broken)
    assert [(e.line, e.reason) for e in report.shown] == [(1, BAD_JSON)]


def test_unopenable_image_paths_are_reported_not_raised(tmp_path, image_root):
    # A symlink loop or a folder where an image should be is a row problem, never a traceback.
    os.symlink(image_root / "loop.jpg", image_root / "loop.jpg")
    (image_root / "folder.jpg").mkdir()
    with pytest.raises(RowError) as exc:
        check_image(image_root / "folder.jpg")
    assert exc.value.reason == IMAGE_MISSING and "is a folder" in str(exc.value)
    path = tmp_path / "odd.jsonl"
    path.write_bytes(row(["loop.jpg"]) + b"\n" + row(["folder.jpg"]) + b"\n")
    report = validate_file(path, image_root=image_root)
    assert {e.line: e.reason for e in report.shown} == {1: IMAGE_MISSING, 2: IMAGE_MISSING}
