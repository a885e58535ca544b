"""What the synthetic traffic of ``gen_requests.py`` looks like: the models and providers it calls, how
often, how fast and how often they fail, and the prices it charges.

The models and prices come from the shipped catalog (``infra/prices.yaml``), so a generated cost is the
cost the gateway would have recorded; one self-hosted model is priced nowhere, to keep the *unpriced*
state (``cost_usd`` NULL) in the data as it is in real traffic. Latency and error figures are plausible
orders of magnitude (public status pages and our own provider runs), not measurements: what matters for
the analytics benchmark is that each provider and model differs, so the per-provider and per-model
questions have something to find.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.prices import load_catalog


@dataclass(frozen=True, slots=True)
class ModelProfile:
    provider: str
    model: str
    weight: float
    """share of the requests that ask for this model (normalised over the mix)"""
    error_rate: float
    """share of its requests that fail at the provider (429, 5xx, timeouts, bad requests)"""
    ttft_ms: float
    """median time to first token"""
    ms_per_token: float
    """median decoding time per completion token"""
    completion_tokens: float
    """median completion length (0: an embedding model)"""


@dataclass(frozen=True, slots=True)
class PricedModel:
    profile: ModelProfile
    input_per_mtok: float | None
    output_per_mtok: float | None
    cached_per_mtok: float | None
    """None: the provider has no prompt cache for it (no cache hits are generated)"""


MIX: tuple[ModelProfile, ...] = (
    ModelProfile("openai", "gpt-4o-mini", 24, 0.012, 380, 9, 260),
    ModelProfile("openai", "gpt-4o", 9, 0.018, 520, 17, 330),
    ModelProfile("openai", "gpt-4.1", 5, 0.015, 560, 16, 380),
    ModelProfile("openai", "gpt-4.1-mini", 7, 0.010, 400, 10, 280),
    ModelProfile("openai", "gpt-4.1-nano", 3, 0.008, 250, 6, 180),
    ModelProfile("openai", "o3-mini", 2, 0.025, 2400, 11, 900),
    ModelProfile("openai", "text-embedding-3-small", 6, 0.004, 90, 0, 0),
    ModelProfile("anthropic", "claude-sonnet-4-0", 10, 0.030, 900, 22, 420),
    ModelProfile("anthropic", "claude-3-5-haiku-latest", 6, 0.020, 600, 12, 260),
    ModelProfile("anthropic", "claude-opus-4-0", 1, 0.045, 1600, 38, 520),
    ModelProfile("gemini", "gemini-2.5-flash", 7, 0.022, 450, 7, 350),
    ModelProfile("gemini", "gemini-2.0-flash", 4, 0.015, 320, 5, 240),
    ModelProfile("gemini", "gemini-2.5-pro", 2, 0.035, 1400, 14, 600),
    ModelProfile("mistral", "mistral-small-latest", 3, 0.012, 300, 8, 220),
    ModelProfile("mistral", "mistral-large-latest", 1, 0.020, 650, 18, 300),
    ModelProfile("groq", "llama-3.3-70b-versatile", 3, 0.040, 150, 3, 300),
    ModelProfile("groq", "llama-3.1-8b-instant", 2, 0.030, 90, 1.5, 200),
    ModelProfile("deepseek", "deepseek-chat", 3, 0.050, 1100, 25, 400),
    ModelProfile("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", 1, 0.025, 500, 12, 300),
    ModelProfile("vllm", "llama-3.1-8b-local", 1, 0.010, 120, 4, 220),  # priced nowhere: unpriced
)


def priced_mix() -> list[PricedModel]:
    """The mix with each model's catalog price (None for a model the catalog does not list)."""
    catalog = {(p.provider, p.model): p for p in load_catalog()}
    out: list[PricedModel] = []
    for profile in MIX:
        price = catalog.get((profile.provider, profile.model))
        out.append(PricedModel(
            profile,
            None if price is None else float(price.input_per_mtok),
            None if price is None else float(price.output_per_mtok),
            None if price is None or price.cached_input_per_mtok is None else float(price.cached_input_per_mtok),
        ))
    return out
