"""``instructkit adapt``: VQA and caption datasets to instruction records through prompt templates, with an
optional answer-preserving LLM rewrite. See docs/adapt.md.

    from instructkit.adapt import run_adapt
    funnel = run_adapt("questions.json", "out.json", annotations="annotations.json", image_root="images/")
"""

from .answers import POLICIES, choose, normalize
from .core import Adapter, AdaptOptions
from .job import load_family, run_adapt
from .sources import SOURCES, open_source

__all__ = ["POLICIES", "SOURCES", "AdaptOptions", "Adapter", "choose", "load_family", "normalize", "open_source",
           "run_adapt"]
