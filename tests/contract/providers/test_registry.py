"""Every provider ``type`` the config accepts has an adapter: a new type cannot land without one."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from schemas.config import OPENAI_COMPATIBLE_DEFAULT_URLS, OpenAIProvider, ProviderConfig
from stages.providers.openai_compat import OpenAICompatAdapter
from stages.providers.registry import ADAPTERS


def config_types() -> list[str]:
    union = typing.get_args(ProviderConfig)[0]
    models: tuple[type[BaseModel], ...] = typing.get_args(union)
    return [t for model in models for t in typing.get_args(model.model_fields["type"].annotation)]


@pytest.mark.parametrize("provider_type", config_types())
def test_every_config_type_has_an_adapter(provider_type: str) -> None:
    assert provider_type in ADAPTERS


def test_every_adapter_is_for_a_config_type() -> None:
    assert set(ADAPTERS) <= set(config_types())


def test_openai_compatible_types_are_the_one_adapter_with_their_own_quirks() -> None:
    types = typing.get_args(OpenAIProvider.model_fields["type"].annotation)
    assert set(types) == set(OPENAI_COMPATIBLE_DEFAULT_URLS)
    adapters = [ADAPTERS[t] for t in types]
    assert all(type(a) is OpenAICompatAdapter for a in adapters)
    quirks = [a.quirks for a in adapters if isinstance(a, OpenAICompatAdapter)]
    assert len({id(q) for q in quirks}) == len(types)
