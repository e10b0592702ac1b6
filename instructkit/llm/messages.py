"""Messages on the wire and in the cache key.

Callers write image parts as ``{"type": "image", "path": ...}``. On the wire a local file becomes a base64
data-URL part and an http(s) URL stays a URL part. In the cache key an image is its content digest, so moving
the image folder does not invalidate the cache and editing an image does.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
from pathlib import Path

from ..errors import RowError

_REMOTE = ("http://", "https://", "data:")
_digests: dict[tuple[str, int, int], str] = {}


def _is_remote(path: str) -> bool:
    return path.startswith(_REMOTE)


def _image_path(part: dict) -> str:
    if part.get("type") == "image_url":
        url = part.get("image_url")
        return url.get("url", "") if isinstance(url, dict) else str(url)
    return str(part.get("path") or part.get("url") or part.get("image") or "")


def image_digest(path: str) -> str:
    if _is_remote(path):
        return "url:" + hashlib.sha256(path.encode()).hexdigest()
    try:
        st = os.stat(path)
    except OSError as exc:
        raise RowError("image-missing", f"image {path} cannot be read: {exc.strerror}") from None
    memo = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    digest = _digests.get(memo)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = "sha256:" + h.hexdigest()
        if len(_digests) > 65536:
            _digests.clear()
        _digests[memo] = digest
    return digest


def _is_image(part: dict) -> bool:
    return part.get("type") in ("image", "image_url")


def key_view(messages: list[dict]) -> list[dict]:
    """Messages as they enter the cache key: images replaced by content digests."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = [{"type": "image", "digest": image_digest(_image_path(p))} if _is_image(p) else p
                       for p in content]
        out.append({**message, "content": content})
    return out


def wire_messages(messages: list[dict]) -> list[dict]:
    """Messages as the OpenAI chat API wants them (image parts as ``image_url``)."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = [_wire_part(p) for p in content]
        out.append({**message, "content": content})
    return out


def _wire_part(part: dict) -> dict:
    if not _is_image(part):
        return part
    path = _image_path(part)
    detail = part.get("detail")
    if _is_remote(path):
        url = path
    else:
        mime = mimetypes.guess_type(path)[0] or "image/jpeg"
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise RowError("image-missing", f"image {path} cannot be read: {exc.strerror}") from None
        url = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    image_url = {"url": url}
    if detail:
        image_url["detail"] = detail
    return {"type": "image_url", "image_url": image_url}


def missing_images(messages: list[dict]) -> list[str]:
    """Local image paths that do not exist (a dry run reports them without reading any image)."""
    missing = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if _is_image(part):
                    path = _image_path(part)
                    if not _is_remote(path) and not os.path.exists(path):
                        missing.append(path)
    return missing


def text_of(messages: list[dict]) -> tuple[str, int]:
    """All text in the messages and the number of images (for token estimates)."""
    texts, images = [], 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if _is_image(part):
                    images += 1
                else:
                    texts.append(str(part.get("text", "")))
    return "\n".join(texts), images
