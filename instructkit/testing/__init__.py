"""Test helpers shipped in the package: a loopback OpenAI-compatible server (``server``), tiny models.

Kept free of heavy imports: import the submodule you need."""
