"""Where the shipped data folders live.

In a wheel, ``templates/``, ``seeds/`` and ``recipes/`` are force-included inside the package; in a source
checkout (editable install) they sit at the repository's top level, which ``importlib.resources`` does not
see, so we fall back to it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import InstructkitError

_NAMES = ("templates", "seeds", "recipes")


def data_dir(name: str) -> Path:
    if name not in _NAMES:
        raise ValueError(name)
    packaged = Path(str(resources.files("instructkit"))) / name
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    raise InstructkitError(f"shipped folder {name!r} not found (looked in {packaged} and {checkout})")


def templates_dir() -> Path:
    return data_dir("templates")


def seeds_dir() -> Path:
    return data_dir("seeds")


def recipes_dir() -> Path:
    return data_dir("recipes")
