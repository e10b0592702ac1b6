"""Header-only image checks: the fast JPEG/PNG parser agrees with PIL, and broken files are caught."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from instructkit.errors import RowError
from instructkit.images import _fast_header, check_image, resolve

SEEDS = Path(__file__).resolve().parent.parent / "seeds" / "images"


@pytest.mark.parametrize("kind", ["baseline.jpg", "progressive.jpg", "gray.jpg", "rgb.png", "rgba.png", "p.gif",
                                  "x.webp", "cmyk.jpg"])
def test_sizes_match_pil(tmp_path, kind):
    mode = {"gray.jpg": "L", "rgba.png": "RGBA", "p.gif": "P", "cmyk.jpg": "CMYK"}.get(kind, "RGB")
    im = Image.new(mode, (317, 141))
    path = tmp_path / kind
    im.save(path, progressive=kind.startswith("progressive"))
    info = check_image(path)
    assert (info.width, info.height) == (317, 141)
    assert info.format == Image.open(path).format


def test_seed_photos_fast_path_equals_pil():
    photos = sorted(SEEDS.glob("*.jpg"))
    assert photos
    for p in photos:
        fast = _fast_header(p)
        assert fast is not None and fast[:2] == Image.open(p).size, p


def test_truncated_and_garbage_and_missing(tmp_path):
    good = tmp_path / "a.jpg"
    Image.new("RGB", (64, 48), "red").save(good)
    data = good.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) - 40])
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    (tmp_path / "text.png").write_text("not an image")
    for name in ("cut.jpg", "junk.jpg", "text.png"):
        with pytest.raises(RowError) as exc:
            check_image(tmp_path / name)
        assert exc.value.reason == "image-corrupt", name
    with pytest.raises(RowError) as exc:
        check_image(tmp_path / "none.jpg")
    assert exc.value.reason == "image-missing"


def test_resolve_refuses_paths_out_of_the_root(tmp_path):
    assert resolve("a/b.jpg", tmp_path) == (tmp_path / "a" / "b.jpg").resolve()
    with pytest.raises(RowError) as exc:
        resolve("../../etc/passwd", tmp_path)
    assert exc.value.reason == "image-path-escapes-root"


def test_frame_header_behind_a_large_exif_block(tmp_path):
    # A 20 kB EXIF segment pushes the JPEG frame header past the first read; the parser must grow its read.
    exif = Image.Exif()
    exif[0x010E] = "x" * 20000
    path = tmp_path / "exif.jpg"
    Image.new("RGB", (200, 100)).save(path, exif=exif.tobytes())
    fast = _fast_header(path)
    assert fast is not None and fast[:3] == (200, 100, "JPEG")
