"""Hugging Face ``datasets``: ``save_to_disk`` folders and parquet files, both ways.

On export images become ``datasets.Image`` values with their bytes embedded (the dataset is
self-contained) and their relative path kept; ``meta`` is stored as a JSON string because its keys differ
from row to row, which Arrow's fixed schema cannot hold. On import an image whose path exists under the
image root is used as is; one that only has bytes is written once under ``<dataset>_images/`` by content
hash, so records keep pointing at files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import FormatError, RowError
from ..records import IMAGE_MISSING, Record, escapes_root, is_url


def _load(path: Path):
    import datasets

    datasets.disable_progress_bars()

    try:
        if path.is_dir():
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if len(ds) != 1:
                    raise FormatError(f"{path}: a DatasetDict with splits {list(ds)}; point at one split's folder")
                ds = next(iter(ds.values()))
        else:
            ds = datasets.Dataset.from_parquet(str(path))
    except FormatError:
        raise
    except Exception as exc:  # datasets raises many types for a folder that is not a dataset
        raise FormatError(f"{path}: not a Hugging Face dataset folder or parquet file ({exc})") from None
    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
        elif isinstance(feature, (datasets.Sequence, datasets.List)) and isinstance(
                getattr(feature, "feature", None), datasets.Image):
            ds = ds.cast_column(name, datasets.List(datasets.Image(decode=False)))
    return ds


def iter_hf_dicts(path: Path, image_dir: Path | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a dataset as plain dicts; image values become paths (see the module docstring)."""
    ds = _load(path)
    out_dir = image_dir or path.with_name(path.stem + "_images")
    for i, row in enumerate(ds):
        yield i, {k: _plain(v, out_dir) for k, v in _with_paths(row).items()}


def _with_paths(row: dict[str, Any]) -> dict[str, Any]:
    """Put our ``image_paths`` column back into the image values: datasets keeps only the base name of an
    embedded image's path, which would lose the folders of a relative path."""
    paths, images = row.get("image_paths"), row.get("images")
    if isinstance(paths, list) and isinstance(images, list) and len(paths) == len(images):
        row = dict(row)
        del row["image_paths"]
        row["images"] = [{**v, "path": p} if isinstance(v, dict) else v for v, p in zip(images, paths)]
    return row


def _plain(value: Any, out_dir: Path) -> Any:
    if isinstance(value, dict) and set(value) == {"bytes", "path"}:
        return _image_path(value, out_dir)
    if isinstance(value, list) and value and isinstance(value[0], dict) and set(value[0]) == {"bytes", "path"}:
        return [_image_path(v, out_dir) for v in value]
    return value


def _image_path(value: dict, out_dir: Path) -> str:
    path, data = value.get("path"), value.get("bytes")
    if data is None:
        return path or ""
    if path and not Path(path).is_absolute() and not is_url(path) and not escapes_root(path):
        # Keep the relative path the exporter recorded; write the bytes there under out_dir if missing.
        target = out_dir / path
    else:
        digest = hashlib.blake2b(data, digest_size=12).hexdigest()
        target = out_dir / f"{digest}{Path(path or '').suffix or _suffix(data)}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    # Relative to out_dir, the default image root of a dataset (formats.convert.default_image_root), so the
    # record does not depend on the folder the dataset was read from.
    return target.relative_to(out_dir).as_posix()


_MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF8", ".gif"), (b"BM", ".bmp"))


def _suffix(data: bytes) -> str:
    """A file suffix from the image bytes, for tools that go by the name."""
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".img"


def iter_hf_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for i, row in iter_hf_dicts(path):
        if isinstance(row.get("meta"), str):
            try:
                row["meta"] = json.loads(row["meta"]) if row["meta"] else {}
            except json.JSONDecodeError:
                raise RowError("wrong-type", "'meta' is not valid JSON", file=str(path), row=i) from None
        yield i, row


def check_embeddable(images: list[str], root: Path | None) -> None:
    """Raise ``RowError`` for an image the export could not embed, before the row is spooled: the caller
    then knows which input row it was (and can skip just that row), where the export itself only could say
    the output row and would have to give up on the whole dataset."""
    base = root or Path(".")
    for p in images:
        if is_url(p):
            raise RowError("unsupported-by-format", f"image {p!r} is a URL; HF export embeds image bytes")
        file = Path(p) if Path(p).is_absolute() else base / p
        if not file.is_file():
            raise RowError(IMAGE_MISSING, f"image {p!r} not found under {base} (needed to embed it; "
                           "pass --image-root)")


def _rows_from_spool(spool: str, root: str):
    """Generator for ``Dataset.from_generator``: module-level with plain arguments so datasets can hash it."""
    base = Path(root)
    with open(spool, "rb") as fh:
        for i, line in enumerate(fh):
            rec = Record.model_validate_json(line)
            images = []
            for p in rec.images:
                if is_url(p):
                    raise RowError("unsupported-by-format", f"image {p!r} is a URL; HF export embeds image bytes",
                                   row=i)
                file = Path(p) if Path(p).is_absolute() else base / p
                if not file.is_file():
                    raise RowError(IMAGE_MISSING, f"image {p!r} not found under {base} (needed to embed it; "
                                   "pass --image-root)", row=i)
                images.append({"bytes": file.read_bytes(), "path": p})
            yield {"id": rec.id, "images": images, "image_paths": list(rec.images),
                   "messages": [{"role": m.role, "content": m.content} for m in rec.messages],
                   "source": rec.source, "task": rec.task,
                   "meta": json.dumps(rec.meta, ensure_ascii=False, sort_keys=True)}


def write_hf(spool: Path, path: Path, container: str, image_root: Path | None) -> int:
    """Write the canonical JSONL ``spool`` as a dataset, streaming through ``Dataset.from_generator``."""
    import shutil
    import tempfile

    import datasets

    datasets.disable_progress_bars()
    features = datasets.Features({
        "id": datasets.Value("string"),
        "images": datasets.List(datasets.Image()),
        "image_paths": datasets.List(datasets.Value("string")),
        "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
        "source": datasets.Value("string"),
        "task": datasets.Value("string"),
        "meta": datasets.Value("string"),
    })
    with tempfile.TemporaryDirectory(prefix="instructkit-hf-") as cache:
        try:
            ds = datasets.Dataset.from_generator(
                _rows_from_spool, features=features, cache_dir=cache,
                gen_kwargs={"spool": str(spool), "root": str(image_root or ".")})
        except Exception as exc:
            # datasets wraps generator errors; surface ours with its row.
            cause = exc
            while cause is not None and not isinstance(cause, RowError):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                raise cause.located(file=str(path)) from None
            raise
        if container == "parquet":
            from .atomic import atomic_write

            with atomic_write(path, "wb") as fh:
                ds.to_parquet(fh)
        else:
            tmp = path.with_name(f".{path.name}.tmp")
            if tmp.exists():
                shutil.rmtree(tmp)
            ds.save_to_disk(str(tmp))
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
        return ds.num_rows
