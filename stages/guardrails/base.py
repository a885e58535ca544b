"""The guardrail contract, shared by built-in and third-party guardrails.

A guardrail is a class with a ``phase`` (``input``: runs on the request, after redaction, before
routing; ``output``: runs on the answer) and a ``check`` that returns a ``Result``: a score in [0, 1]
and its findings as ``{type: count}``. It never decides what happens: the runner (``runner.py``)
compares the score with the configured ``threshold`` and applies the configured ``action`` (flag,
block, or redact for guardrails that support it), and records the ``Verdict``.

Options come from the config's ``settings`` mapping, validated by the class's ``Settings`` model when
the config is loaded. A guardrail is built once per config version and reused for every request, so
``check`` must not keep per-request state. It must never put a raw matched value in its findings.

A third-party package registers one in its ``pyproject.toml``::

    [project.entry-points."llm_gateway.guardrails"]
    my_rule = "my_package.module:MyGuardrail"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from schemas.guardrails import Phase


class NoSettings(BaseModel):
    """For guardrails without options: any key given is refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True, slots=True)
class Subject:
    """What a guardrail checks.

    ``request`` is the chat request body as the provider will see it (after redaction: values are
    placeholders). For output guardrails ``answer`` is the answer's text as the caller receives it
    and ``response`` the whole ``chat.completion`` dict (``None`` for a stream, checked at its end).
    """

    phase: Phase
    request: Mapping[str, Any]
    answer: str = ""
    response: Mapping[str, Any] | None = None
    tenant: str = ""
    api_key_id: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True)
class Result:
    score: float = 0.0
    findings: dict[str, int] = field(default_factory=dict)
    """{finding type: count}: rule ids, entity types, ...; never the matched text."""
    redact: Callable[[str], str] | None = None
    """For ``action: redact``: how to rewrite a text (the answer); ``None`` if redaction does not apply."""


PASS = Result()


class Guardrail:
    """Base class: subclass, set ``phase`` (and ``Settings``), implement ``check``."""

    phase: ClassVar[Phase]
    Settings: ClassVar[type[BaseModel]] = NoSettings
    supports_redact: ClassVar[bool] = False

    def __init__(self, settings: BaseModel) -> None:
        self.settings = settings

    def check(self, subject: Subject) -> Result:
        raise NotImplementedError
