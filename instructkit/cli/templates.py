"""`instructkit templates`: list, show and lint the prompt templates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import echo, run

TemplateDirs = Annotated[
    list[Path] | None,
    typer.Option("--templates-dir", "-t", help="A folder of your own templates, searched before the shipped "
                 "ones (repeatable); a file there overrides a shipped file of the same name."),
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="List, show and lint prompt templates (Jinja2 files under templates/).",
                        no_args_is_help=True)
    app.add_typer(group, name="templates")

    @group.command("list", help="List every template with its entry count, variables and origin.")
    def list_cmd(templates_dir: TemplateDirs = None) -> None:
        run(_list, templates_dir or [])

    @group.command("show", help="Show a template's entries and the variables it needs. NAME is e.g. "
                   "adapt/vqa or adapt/vqa#3 for one entry.")
    def show_cmd(name: Annotated[str, typer.Argument(help="Template name, e.g. adapt/vqa or adapt/vqa#3.")],
                 templates_dir: TemplateDirs = None) -> None:
        run(_show, name, templates_dir or [])

    @group.command("lint", help="Check templates for duplicate entries, undeclared or unused variables and "
                   "entries glued by a missing separator. Exit 1 when a problem is found.")
    def lint_cmd(names: Annotated[list[str] | None, typer.Argument(help="Templates to lint (default: all).")] = None,
                 templates_dir: TemplateDirs = None) -> None:
        problems = run(_lint, names or [], templates_dir or [])
        if problems:
            raise typer.Exit(1)


def _engine(dirs: list[Path]):
    from ..templates import TemplateEngine

    return TemplateEngine(dirs)


def _list(dirs: list[Path]) -> None:
    eng = _engine(dirs)
    rows = [(f.name, str(len(f.entries)), ", ".join(sorted(f.variables)) or "-", f.origin)
            for f in eng.list()]
    widths = [max(len(r[i]) for r in rows + [("name", "entries", "variables", "origin")]) for i in range(4)]
    for r in [("name", "entries", "variables", "origin"), *rows]:
        echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _show(name: str, dirs: list[Path]) -> None:
    eng = _engine(dirs)
    fam = eng.family(name)
    entries = [fam.entry(name.split("#", 1)[1])] if "#" in name else fam.entries
    echo(f"# {fam.name}  ({fam.origin}: {fam.path})")
    if fam.header.get("about"):
        echo(f"# about: {fam.header['about']}")
    needed = set().union(*(e.variables for e in entries))
    echo(f"# variables: {', '.join(sorted(needed)) or '(none)'}")
    for e in entries:
        echo(f"\n## {e.id}  (line {e.line})")
        echo(e.text)


def _lint(names: list[str], dirs: list[Path]) -> list[str]:
    eng = _engine(dirs)
    problems: list[str] = []
    from ..errors import TemplateError

    for n in names or eng.names():
        try:
            found = eng.lint(n)
        except TemplateError as exc:    # a file that does not parse is a finding; lint the rest too
            found = [str(exc)]
        for p in found:
            problems.append(f"{n}: {p}")
    for p in problems:
        echo(p)
    echo(f"{len(problems)} problem(s) in {len(names or eng.names())} template(s)")
    return problems
