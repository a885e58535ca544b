"""Finding guardrail classes by name: the entry points of the ``llm_gateway.guardrails`` group.

The built-ins are declared in this project's own ``pyproject.toml`` in the same group, so they are
found exactly like a third-party package's. Looking the group up costs ≈ 1 ms; it is done once per
process and cached (``refresh`` drops the cache, for tests that install a package on the fly).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from schemas.errors import ConfigInvalid
from stages.guardrails.base import Guardrail

GROUP = "llm_gateway.guardrails"


class UnknownGuardrail(ConfigInvalid):
    """No guardrail is registered under the name, or its entry point does not load a guardrail class."""

    default_code = "unknown_guardrail"


@cache
def available() -> dict[str, EntryPoint]:
    """Every registered guardrail by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


@cache
def load(name: str) -> type[Guardrail]:
    """The class registered as ``name``; ``UnknownGuardrail`` if none is, or it is not a guardrail."""
    ep = available().get(name)
    if ep is None:
        known = ", ".join(sorted(available())) or "none"
        raise UnknownGuardrail(f"unknown guardrail {name!r} (registered: {known})")
    try:
        cls = ep.load()
    except Exception as exc:  # noqa: BLE001 - a broken package must be refused with its name, not crash the loader
        raise UnknownGuardrail(f"entry point {name!r} ({ep.value}) could not be loaded: {exc!r}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Guardrail)) or getattr(cls, "phase", None) not in (
        "input", "output"
    ):
        raise UnknownGuardrail(f"entry point {name!r} ({ep.value}) is not a Guardrail class with a phase")
    return cls


def refresh() -> None:
    available.cache_clear()
    load.cache_clear()
