"""The record formats: how to parse and dump a row, which container each writes, how each is sniffed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FormatError
from ..records import Record
from . import alpaca, canonical, llava, messages


@dataclass(frozen=True)
class Format:
    name: str
    parse: Callable[[dict], dict]
    dump: Callable[[Record, bool], dict]
    sniff: Callable[[Any], bool]
    container: str          # default container when the file name does not say: "jsonl" or "json"
    description: str


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("canonical", canonical.parse, canonical.dump, canonical.sniff, "jsonl",
               "instructkit's own JSONL: {id, images, messages, source, task, meta}"),
        Format("llava", llava.parse, llava.dump, llava.sniff, "json",
               "LLaVA JSON list: {id, image, conversations: [{from: human|gpt, value}]}"),
        Format("sharegpt", messages.parse, messages.dump_sharegpt, messages.sniff_sharegpt, "json",
               "ShareGPT / LLaMA-Factory: {messages: [{role, content}], images: [...]}"),
        Format("openai", messages.parse, messages.dump_openai, messages.sniff_openai, "jsonl",
               "OpenAI chat messages with content parts (image_url)"),
        Format("alpaca", alpaca.parse, alpaca.dump, alpaca.sniff, "json",
               "Alpaca: {instruction, input, output} (text only; history for earlier turns)"),
    )
}
# Sniff order matters: canonical before sharegpt (both have messages), openai before sharegpt.
SNIFF_ORDER = ("openai", "canonical", "llava", "sharegpt", "alpaca")
ALL_NAMES = (*FORMATS, "hf")


def get(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise FormatError(f"unknown format {name!r}; choose one of {', '.join(ALL_NAMES)}") from None


def sniff_row(obj: Any) -> str | None:
    for name in SNIFF_ORDER:
        if FORMATS[name].sniff(obj):
            return name
    return None


def format_for_output(path: Path, fmt: str | None) -> tuple[str, str]:
    """(format, container) for writing ``path``: ``--to`` wins, else the file name decides."""
    suffix = path.suffix.lower()
    if fmt == "hf" or (fmt is None and (suffix == ".parquet" or suffix == "" and not path.is_file())):
        return "hf", "parquet" if suffix == ".parquet" else "dir"
    if fmt is None:
        if suffix == ".jsonl":
            return "canonical", "jsonl"
        if suffix == ".json":
            return "llava", "json"
        raise FormatError(f"{path}: cannot tell the output format from the name; use --to "
                          f"({', '.join(ALL_NAMES)}) or a .jsonl / .json / .parquet name")
    get(fmt)
    if suffix == ".jsonl":
        return fmt, "jsonl"
    if suffix == ".json":
        return fmt, "json"
    return fmt, FORMATS[fmt].container
