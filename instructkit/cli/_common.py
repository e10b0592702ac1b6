"""Shared bits of the command modules: error mapping and terminal output."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ..errors import InstructkitError

T = TypeVar("T")


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the library; a user-caused error becomes a red message on stderr and exit code 1."""
    try:
        return fn(*args, **kwargs)
    except InstructkitError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.secho("interrupted", fg=typer.colors.RED, err=True)
        raise typer.Exit(130) from None


def info(message: str) -> None:
    """Progress and funnel lines go to stderr so stdout stays clean for data (``-o -``)."""
    print(message, file=sys.stderr, flush=True)


def echo(message: str) -> None:
    print(message, flush=True)
