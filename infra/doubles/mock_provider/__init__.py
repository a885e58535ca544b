"""A fast mock LLM provider speaking the OpenAI, Anthropic and Gemini wire formats, with fault injection."""

from __future__ import annotations

from infra.doubles.mock_provider.server import MockProvider, app, run

__all__ = ["MockProvider", "app", "run"]
