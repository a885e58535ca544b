from __future__ import annotations

from infra.prices import load_catalog
from schemas.config import OPENAI_COMPATIBLE_DEFAULT_URLS


def test_the_shipped_catalog_loads_with_known_provider_types() -> None:
    catalog = load_catalog()
    assert len(catalog) >= 20
    known = {*OPENAI_COMPATIBLE_DEFAULT_URLS, "azure", "anthropic", "gemini", "cohere"}
    assert {e.provider for e in catalog} <= known
    assert all(e.input_per_mtok >= 0 and e.output_per_mtok >= 0 for e in catalog)
    assert len({(e.provider, e.model) for e in catalog}) == len(catalog)  # no entry shadows another

