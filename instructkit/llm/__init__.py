"""The LLM engine: the project's only door to a chat-completion endpoint (OpenAI, vLLM, Ollama, llama.cpp).

    from instructkit.llm import LLMConfig, Engine, Request
    with Engine(LLMConfig(model="gpt-4o-mini", cache_path=Path("cache.sqlite"))) as engine:
        for result in engine.run(requests):      # in input order, one Result per request
            ...

Importing this package is cheap: ``openai`` loads when the first call is made. See docs/llm.md.
"""

from .accounting import Estimate, PriceTable, Stats
from .engine import Engine
from .types import LLMConfig, ParseRejected, Request, Result

__all__ = ["Engine", "Estimate", "LLMConfig", "ParseRejected", "PriceTable", "Request", "Result", "Stats"]
