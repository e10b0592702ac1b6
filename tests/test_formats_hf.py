"""Hugging Face datasets both ways: save_to_disk folders and parquet files, images as ``datasets.Image``
with their bytes embedded, read back to the same records; a missing image fails before anything is written."""

from __future__ import annotations

import pytest
from io_samples import SEEDS, edge_records, multi_image, vqa_records, with_system
from typer.testing import CliRunner

from instructkit.cli import app
from instructkit.errors import FormatError, RowError
from instructkit.formats import read_records, write_records
from instructkit.records import IMAGE_MISSING

runner = CliRunner()


def sample():
    return vqa_records()[:4] + edge_records() + [multi_image(), with_system()]


@pytest.mark.parametrize("name", ["ds", "ds.parquet"])
def test_export_embeds_images_and_reads_back(tmp_path, name):
    import datasets

    recs = sample()
    out = tmp_path / name
    assert write_records(recs, out, "hf", image_root=SEEDS) == len(recs)
    ds = datasets.load_from_disk(str(out)) if out.is_dir() else datasets.Dataset.from_parquet(str(out))
    assert isinstance(ds.features["images"].feature, datasets.Image)
    assert ds.num_rows == len(recs)
    first = ds.cast_column("images", datasets.List(datasets.Image(decode=False)))[0]["images"][0]
    # save_to_disk keeps only the base name of an embedded image; the relative path rides in image_paths.
    assert first["path"] in ("000000000001.jpg", "images/000000000001.jpg")
    assert ds[0]["image_paths"] == recs[0].images == ["images/000000000001.jpg"]
    assert first["bytes"] == (SEEDS / recs[0].images[0]).read_bytes()
    # Decoded by datasets itself, it is a real picture.
    assert ds[0]["images"][0].size == (512, 512)

    reader = read_records(out)
    assert reader.format == "hf"
    back = list(reader)
    assert [r.model_dump() for r in back] == [r.model_dump() for r in recs]
    # The embedded bytes are written out under <name>_images/ so records point at real files.
    img_dir = out.with_name(out.stem + "_images")
    for rec in back:
        for path in rec.images:
            assert (img_dir / path).read_bytes() == (SEEDS / path).read_bytes()


def test_cli_round_trip_through_parquet_and_folder(tmp_path):
    src = tmp_path / "in.jsonl"
    recs = sample()
    write_records(recs, src)
    for args in (["-o", tmp_path / "x.parquet"], ["-o", tmp_path / "folder", "--to", "hf"]):
        result = runner.invoke(app, ["convert", str(src), *map(str, args), "--image-root", str(SEEDS)])
        assert result.exit_code == 0, result.output
    for out in (tmp_path / "x.parquet", tmp_path / "folder"):
        back = tmp_path / f"{out.name}.back.jsonl"
        result = runner.invoke(app, ["convert", str(out), "-o", str(back)])
        assert result.exit_code == 0, result.output
        assert "reading as hf" in result.stderr
        assert back.read_bytes() == src.read_bytes()
        # The relative image paths of the output point into the unpacked folder, and the command says so.
        unpacked = out.with_name(out.stem + "_images")
        assert f"images unpacked under {unpacked}; use --image-root {unpacked}" in result.stderr


def test_missing_image_fails_and_keeps_previous_dataset(tmp_path):
    out = tmp_path / "ds"
    write_records(vqa_records()[:2], out, "hf", image_root=SEEDS)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(RowError) as info:
        write_records(vqa_records()[:2], out, "hf", image_root=tmp_path / "nowhere")
    assert info.value.reason == IMAGE_MISSING and info.value.row == 0
    assert sorted(p.name for p in out.iterdir()) == before
    assert sum(1 for _ in read_records(out)) == 2


def test_not_a_dataset_folder(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("hi")
    with pytest.raises(FormatError, match="not a Hugging Face dataset"):
        list(read_records(tmp_path / "junk"))
    with pytest.raises(FormatError, match="can only be read as hf"):
        read_records(tmp_path / "junk", "llava")


def test_foreign_llava_style_parquet_with_image_bytes(tmp_path):
    import datasets

    jpg = (SEEDS / "images/000000000002.jpg").read_bytes()
    ds = datasets.Dataset.from_dict(
        {"id": ["a", "b"], "image": [{"bytes": jpg, "path": None}, {"bytes": jpg, "path": None}],
         "conversations": [[{"from": "human", "value": "<image>\nWhat animal?"}, {"from": "gpt", "value": "Cat."}]] * 2},
        features=datasets.Features({
            "id": datasets.Value("string"), "image": datasets.Image(),
            "conversations": datasets.List({"from": datasets.Value("string"), "value": datasets.Value("string")})}))
    ds.to_parquet(str(tmp_path / "foreign.parquet"))
    recs = list(read_records(tmp_path / "foreign.parquet"))
    assert [r.id for r in recs] == ["a", "b"]
    # Bytes without a path are written once, named by content hash.
    assert recs[0].images == recs[1].images and len(recs[0].images) == 1
    assert (tmp_path / "foreign_images" / recs[0].images[0]).read_bytes() == jpg


def test_validate_and_reconvert_a_dataset_without_naming_the_image_root(tmp_path):
    from instructkit.formats.convert import convert_file
    from instructkit.quality.validate import validate_file

    recs = sample()
    write_records(recs, tmp_path / "d.parquet", image_root=SEEDS)
    report = validate_file(tmp_path / "d.parquet")
    assert report.ok, report.render()
    assert report.images_checked == sum(len(r.images) for r in recs)
    # parquet -> folder: the images unpacked from the parquet are embedded again.
    funnel = convert_file(tmp_path / "d.parquet", tmp_path / "again", to_fmt="hf")
    assert funnel["written"] == len(recs)
    assert [r.model_dump() for r in read_records(tmp_path / "again")] == [r.model_dump() for r in recs]


def test_convert_to_hf_names_the_input_line_of_a_row_whose_image_is_missing_and_skip_keeps_the_rest(tmp_path):
    import json

    from instructkit.records import conversation

    recs = [conversation(f"Q{i}?", f"A{i}.", images=[f"images/00000000000{i}.jpg"]) for i in (1, 2, 3)]
    src = tmp_path / "in.jsonl"
    write_records(recs, src)
    (tmp_path / "imgs" / "images").mkdir(parents=True)
    for rec in recs[:2]:
        for p in rec.images:
            (tmp_path / "imgs" / p).write_bytes((SEEDS / p).read_bytes())
    missing = recs[2].images[0]
    assert not (tmp_path / "imgs" / missing).exists()
    base = ["convert", str(src), "-o", str(tmp_path / "ds"), "--to", "hf", "--image-root", str(tmp_path / "imgs")]
    result = runner.invoke(app, base)
    assert result.exit_code == 1 and f"{src}:3: cannot be written as hf" in result.stderr
    assert not (tmp_path / "ds").exists()
    # Skip mode: the one row goes to the rejects file, the others are exported.
    result = runner.invoke(app, [*base, "--on-error", "skip"])
    assert result.exit_code == 0, result.output
    assert sum(1 for _ in read_records(tmp_path / "ds")) == 2
    (rej,) = [json.loads(line) for line in (tmp_path / "ds.rejects.jsonl").read_text().splitlines()]
    assert (rej["reason"], rej["line"], rej["data"]["images"]) == (IMAGE_MISSING, 3, [missing])


def test_foreign_dataset_read_by_a_relative_path_points_its_images_into_the_image_folder(tmp_path, monkeypatch):
    # Path-less image bytes are unpacked under <name>_images/, and the record's path is relative to that
    # folder (the default image root of a dataset), whatever the current folder: validate passes as is.
    import datasets

    from instructkit.quality.validate import validate_file

    png = (SEEDS / "images/000000000002.jpg").read_bytes()
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": png, "path": None}],
         "conversations": [[{"from": "human", "value": "<image>\nWhat animal?"}, {"from": "gpt", "value": "Cat."}]]},
        features=datasets.Features({
            "image": datasets.Image(),
            "conversations": datasets.List({"from": datasets.Value("string"), "value": datasets.Value("string")})}))
    (tmp_path / "data").mkdir()
    ds.to_parquet(str(tmp_path / "data" / "foreign.parquet"))
    monkeypatch.chdir(tmp_path)
    (rec,) = list(read_records("data/foreign.parquet"))
    assert "/" not in rec.images[0] and rec.images[0].endswith(".jpg")
    assert (tmp_path / "data" / "foreign_images" / rec.images[0]).read_bytes() == png
    report = validate_file("data/foreign.parquet")
    assert report.ok, report.render()
