"""Secrets in the config file are references, ``env:NAME``, never values: resolved only by the stage
that needs them (the provider stage for API keys, redaction for the hash salt).

A field holding one is typed ``PROVIDER_SECRET`` or ``REDACTION_SECRET``: checked to be a reference, and
marked with the stage that resolves it (``ResolvedBy``), so ``referenced_secrets`` finds every reference in
a parsed config, and its stage, from the models themselves: ``gateway up`` gives each variable only to
the processes that run that stage (``infra/child_env.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel

SECRET_REF = re.compile(r"^env:[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ResolvedBy:
    """Field metadata: the stage whose worker resolves this ``env:NAME`` reference (and no other)."""

    stage: str


def check_secret_ref(value: str | None) -> str | None:
    """``value`` if it is ``None`` or an ``env:NAME`` reference; a field validator raises otherwise."""
    if value is not None and not SECRET_REF.match(value):
        raise ValueError("secrets are referenced as 'env:NAME', never written in the config file")
    return value


PROVIDER_SECRET = Annotated[str | None, AfterValidator(check_secret_ref), ResolvedBy("provider")]
"""A provider credential (``api_key``, Bedrock's AWS keys): resolved only by the provider stage."""
REDACTION_SECRET = Annotated[str | None, AfterValidator(check_secret_ref), ResolvedBy("redaction")]
"""A redaction secret (the hash salt): resolved only by the redaction stage."""


def variable_of(ref: str) -> str:
    """``env:NAME`` → ``NAME``."""
    return ref.removeprefix("env:")


def referenced_secrets(model: BaseModel) -> dict[str, frozenset[str]]:
    """Every ``env:NAME`` reference in ``model`` (a parsed config, or any part of it), by the stage that
    resolves it: ``{"provider": {"OPENAI_API_KEY", ...}, "redaction": {...}}``; stages with none left out."""
    found: dict[str, set[str]] = {}
    for stage, ref in _refs(model):
        found.setdefault(stage, set()).add(variable_of(ref))
    return {stage: frozenset(names) for stage, names in found.items()}


def _refs(value: object) -> Iterator[tuple[str, str]]:
    if isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            item = getattr(value, name)
            marks = [m for m in field.metadata if isinstance(m, ResolvedBy)]
            if marks and isinstance(item, str):
                yield marks[0].stage, item
            else:
                yield from _refs(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _refs(item)
