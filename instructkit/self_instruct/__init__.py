"""Self-instruction: LLaVA-style generation from captions and boxes, Self-Instruct bootstrap, Evol-Instruct.

The core modules are pure (contexts, prompts, parsers, guardrails, the bootstrap and evolve loops take an
injected ``generate``); ``job.run_self_instruct`` wires files and the LLM engine around them.
"""
