"""`instructkit run`: build a whole data set (and optionally train) from a YAML recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import info, run


def register(app: typer.Typer) -> None:
    @app.command("run", help="Run a recipe: a YAML file naming steps (adapt, self-instruct, filter, mix, "
                 "convert, train, tiny-model) with their inputs, output and options (the commands' own option "
                 "names). Steps run in dependency order; a step whose inputs, options and code did not change "
                 "is skipped, so a rerun after a failure resumes. Writes a manifest (instructkit.lock.json) "
                 "with versions, input hashes, seeds, every step's funnel and output hash. RECIPE is a path "
                 "or the name of a shipped recipe (quickstart, llava15-mini).")
    def _cmd(
        recipe: Annotated[str, typer.Argument(help="Recipe file, or a shipped recipe's name.")],
        workdir: Annotated[Optional[Path], typer.Option("--workdir", "-w", help="Folder for the outputs and "
                                                        "the .instructkit/ state (default: the recipe's "
                                                        "workdir:, else build/<recipe name>).")] = None,
        set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe variable "
                                                          "(NAME=VALUE) or a step option (STEP.OPTION=VALUE); "
                                                          "repeatable. Values are read as YAML.")] = None,
        force: Annotated[Optional[list[str]], typer.Option("--force", help="Rerun this step even if "
                                                           "unchanged ('all' for every step); "
                                                           "repeatable.")] = None,
        until: Annotated[Optional[str], typer.Option("--until", help="Stop after this step (running only "
                                                     "the steps it needs).")] = None,
        plan: Annotated[bool, typer.Option("--plan", help="Say which steps would run or be skipped, and "
                                           "stop.")] = False,
    ) -> None:
        from ..pipeline import run_recipe

        run(run_recipe, recipe, workdir=workdir, sets=set_ or [], force=force or [], until=until,
            plan_only=plan, log=info)
