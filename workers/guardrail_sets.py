"""What the guardrail-running stages share: which profile a request runs, and the guardrail sets of one
config version (one ``GuardrailSet`` per profile, built on first use). A worker holds them as
``Derived(GuardrailSets.of)``: a new version gets new sets, and the old version's are dropped."""

from __future__ import annotations

from schemas.config import GatewayConfig, Guardrails
from schemas.envelope import Envelope
from schemas.governance import VirtualKey
from stages.guardrails.runner import GuardrailSet


def profile_of(config: GatewayConfig, envelope: Envelope, key: VirtualKey | None = None) -> Guardrails:
    """The profile the redaction stage resolved, else the key's (``key``, from the key directory; else
    the config file's key), the model alias's, or ``default``."""
    if envelope.guardrail_profile:
        return config.profile(envelope.guardrail_profile)
    if key is not None:
        return config.guardrails_of(key.guardrail_profile, envelope.model_requested)
    return config.guardrails_for(envelope.api_key_hash, envelope.model_requested)


class GuardrailSets:
    """The guardrail sets of one config version: one ``GuardrailSet`` per profile, built on first use (a
    profile whose guardrails cannot be built fails only the requests that run it)."""

    def __init__(self) -> None:
        self._sets: dict[str, GuardrailSet] = {}

    @classmethod
    def of(cls, _config: GatewayConfig) -> GuardrailSets:
        """The (still empty) sets of a config version: each profile's is built when a request first runs it."""
        return cls()

    def get(self, profile: Guardrails) -> GuardrailSet:
        found = self._sets.get(profile.profile)
        if found is None:
            found = self._sets[profile.profile] = GuardrailSet(profile.guardrails)
        return found
