"""Finding guardrails by entry point: the built-ins, and a third-party package installed on the fly."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.guardrails import GuardrailSpec
from stages.guardrails import registry
from stages.guardrails.blocked_terms import BlockedTerms
from stages.guardrails.injection import PromptInjection
from stages.guardrails.response_format import ResponseFormat
from stages.guardrails.runner import GuardrailSet
from stages.guardrails.secrets import Secrets
from tests.unit.stages.guardrails.conftest import user


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    registry.refresh()
    yield
    registry.refresh()


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str, source: str, entry_points: str) -> None:
    """A package and its ``*.dist-info`` (with ``entry_points.txt``), as pip would leave them, on sys.path."""
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text(textwrap.dedent(source))
    info = tmp_path / f"{package}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, package, raising=False)
    registry.refresh()


def test_builtins_are_registered_like_any_package() -> None:
    assert registry.load("prompt_injection") is PromptInjection
    assert registry.load("secrets") is Secrets
    assert registry.load("blocked_terms") is BlockedTerms
    assert registry.load("response_format") is ResponseFormat
    assert {"prompt_injection", "secrets", "blocked_terms", "response_format"} <= set(registry.available())


def test_unknown_name_lists_the_registered_ones() -> None:
    with pytest.raises(registry.UnknownGuardrail, match=r"unknown guardrail 'nope' \(registered: .*prompt_injection"):
        registry.load("nope")


THIRD_PARTY = '''
    from __future__ import annotations

    from pydantic import BaseModel, ConfigDict

    from stages.guardrails.base import Guardrail, Result, Subject


    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        word: str


    class ShoutDetector(Guardrail):
        """Scores the share of upper-case letters in the last user message; can redact answers."""

        phase = "output"
        Settings = Options
        supports_redact = True

        def check(self, subject: Subject) -> Result:
            word = self.settings.word
            hits = subject.answer.count(word)
            if not hits:
                return Result()
            return Result(score=1.0, findings={"word": hits}, redact=lambda text: text.replace(word, "***"))


    class NotAGuardrail:
        pass
'''


def test_third_party_guardrail_loads_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path, monkeypatch, "acme_guard", THIRD_PARTY, """
        [llm_gateway.guardrails]
        acme_word = acme_guard:ShoutDetector
        acme_broken = acme_guard:NotAGuardrail
        acme_missing = acme_guard_missing.module:Thing
    """)
    assert "acme_word" in registry.available()
    guardrails = GuardrailSet([GuardrailSpec(use="acme_word", name="word", action="redact",
                                             settings={"word": "darn"})])
    from stages.guardrails.base import Subject
    outcome = guardrails.run(Subject(phase="output", request={}, answer="well darn it, darn"))
    assert [(v.guardrail, v.kind, v.outcome, v.findings) for v in outcome.verdicts] == [
        ("word", "acme_word", "redact", {"word": 2})]
    assert outcome.rewrites[0]("well darn it") == "well *** it"
    assert guardrails.run(user("darn")).verdicts == []  # an output guardrail does not run on input

    with pytest.raises(registry.UnknownGuardrail, match="not a Guardrail class"):
        registry.load("acme_broken")
    with pytest.raises(registry.UnknownGuardrail, match="could not be loaded"):
        registry.load("acme_missing")


def test_refresh_forgets_an_uninstalled_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        install(tmp_path, patch, "acme_guard2", THIRD_PARTY, """
            [llm_gateway.guardrails]
            acme_word2 = acme_guard2:ShoutDetector
        """)
        assert "acme_word2" in registry.available()
    registry.refresh()
    assert "acme_word2" not in registry.available()
