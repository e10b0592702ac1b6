"""Mix language-only and multimodal sets: concat, shuffle (in memory or external), sequential stages,
weighted interleave with three stopping rules, modality-grouped and fixed-ratio batches; with a manifest.

``run_mix`` (in ``job``) is the one entry point; ``strategies`` holds the pure logic over entry arrays.
"""

from __future__ import annotations

from .job import manifest_path_for, run_mix
from .spec import InputSpec, MixOptions, load_recipe, parse_input

__all__ = ["InputSpec", "MixOptions", "load_recipe", "manifest_path_for", "parse_input", "run_mix"]
