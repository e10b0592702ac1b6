"""Command line: the only importer of typer. Each command module parses options, calls one library
function and maps ``InstructkitError`` to a red message and exit code 1 (see ``_common.run``).

Command modules import the library lazily inside the command body, so ``instructkit --help`` stays fast
and loads none of torch, transformers, datasets or openai.
"""

from __future__ import annotations

import typer

from . import adapt, convert, filter, mix, run, self_instruct, stats, templates, train, validate

app = typer.Typer(
    name="instructkit",
    help="Build instruction-tuning data for multimodal LLMs (adapt, self-instruct, mix), check it "
    "(validate, stats, filter), convert it between formats and fine-tune on it (train).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

for module in (adapt, self_instruct, mix, train, stats, filter, convert, validate, templates, run):
    module.register(app)


def main() -> None:
    app()
