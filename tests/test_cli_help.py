"""`instructkit --help` stays light, every command documents itself, and docs/ is in step with --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import typer.main

from instructkit.cli import app

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "datasets", "openai", "peft", "accelerate", "pyarrow")
COMMANDS = ("adapt", "self-instruct", "mix", "train", "stats", "filter", "convert", "validate", "templates", "run")


def _loaded_after(args: list[str]) -> list[str]:
    code = (
        "import sys\n"
        "from instructkit.cli import main\n"
        f"sys.argv = ['instructkit', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('LOADED:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("LOADED:")][-1]
    return [m for m in line.removeprefix("LOADED:").split(",") if m]


def test_help_imports_no_heavy_library():
    assert _loaded_after(["--help"]) == []


def test_every_command_help_is_light():
    for cmd in COMMANDS:
        assert _loaded_after([cmd, "--help"]) == [], cmd


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "instructkit", "--help"], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    for cmd in COMMANDS:
        assert f"  {cmd} " in out, cmd


def _commands():
    root = typer.main.get_command(app)
    ctx = click.Context(root)
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            sub_ctx = click.Context(cmd)
            for sub in cmd.list_commands(sub_ctx):
                yield name, f"{name} {sub}", cmd.get_command(sub_ctx, sub)
        yield name, name, cmd


def test_every_command_has_help_and_a_docs_page_naming_its_options():
    problems = []
    for page, full, cmd in _commands():
        text = (cmd.help or "").strip()
        if not text or text.startswith("(arrives"):
            problems.append(f"{full}: no help text")
        doc = ROOT / "docs" / f"{page}.md"
        if not doc.is_file():
            problems.append(f"{full}: no docs/{page}.md")
            continue
        body = doc.read_text(encoding="utf-8")
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt != "--help" and opt not in body:
                    problems.append(f"{full}: option {opt} not in docs/{page}.md")
    assert not problems, "\n".join(problems)
