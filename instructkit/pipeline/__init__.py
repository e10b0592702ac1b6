"""Recipes: a whole data build (adapt, self-instruct, filter, mix, train) as one declarative, resumable,
reproducible YAML file, run by ``instructkit run``. See docs/run.md.
"""

from .recipe import Recipe, Step, load
from .runner import StepFailed, find_recipe, plan, run_recipe

__all__ = ["Recipe", "Step", "StepFailed", "find_recipe", "load", "plan", "run_recipe"]
