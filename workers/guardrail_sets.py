"""What the guardrail-running stages share: which profile a request runs, and one ``GuardrailSet`` per
(config version, profile), built on first use."""

from __future__ import annotations

from schemas.config import GatewayConfig, Guardrails
from schemas.envelope import Envelope
from stages.guardrails.runner import GuardrailSet


def profile_of(config: GatewayConfig, envelope: Envelope) -> Guardrails:
    """The profile the redaction stage resolved, else the key's, the model alias's, or ``default``."""
    if envelope.guardrail_profile:
        return config.profile(envelope.guardrail_profile)
    return config.guardrails_for(envelope.api_key_hash, envelope.model_requested)


class GuardrailSets:
    """One ``GuardrailSet`` per (config version, profile), built on first use; a request under a new
    version drops the sets of the others (hot reload)."""

    def __init__(self) -> None:
        self._version = ""
        self._sets: dict[str, GuardrailSet] = {}

    def get(self, version: str, profile: Guardrails) -> GuardrailSet:
        if version != self._version:
            self._version, self._sets = version, {}
        found = self._sets.get(profile.profile)
        if found is None:
            found = self._sets[profile.profile] = GuardrailSet(profile.guardrails)
        return found
