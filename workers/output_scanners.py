"""The output filter's PII scanners: one per distinct profile settings, built with presidio, reused across reloads.

A profile's output scanner is its output-filter engine and entities plus its redaction's custom
recognizers, score threshold and allow lists; profiles with equal settings share one, and a config
reload rebuilds only the scanners whose settings changed (``derive_scanners``: an ``infra.derived.Derived``
whose build keeps the last build's unchanged scanners; it runs in a thread).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from infra import bootstrap
from infra.derived import Built, Derived
from schemas.config import DEFAULT_ENTITIES, GatewayConfig, Guardrails, PiiEngine
from stages.pii import PiiScanner


@dataclass(frozen=True, slots=True)
class OutputScanners:
    """A profile's output scanners: ``full`` finds every entity; with the NER engine, ``fast`` (the
    pattern analyzer, pattern and custom entities only) does the scans between two full ones in
    streams (see ``stages/output_filter.py``, scan cadence)."""

    full: PiiScanner
    fast: PiiScanner | None = None


Scanners = dict[str, OutputScanners]
"""Profile name → the scanners its output filter uses."""


def scanner_settings(profile: Guardrails) -> str:
    """What a profile's output scanner is built from, as a comparable key."""
    redaction, output = profile.redaction, profile.output_filter
    return json.dumps({
        "engine": output.engine, "entities": output.entity_types, "threshold": redaction.score_threshold,
        "custom": [c.model_dump() for c in redaction.custom], "allow_list": redaction.allow_list,
        "allow_patterns": redaction.allow_patterns}, sort_keys=True)


def scanner_inputs(config: GatewayConfig) -> object:
    """What the output scanners are built from: a change to any of these rebuilds (only) what changed."""
    return tuple(sorted((name, scanner_settings(p)) for name, p in config.active_profiles.items()))


def build_scanner(profile: Guardrails) -> OutputScanners:
    """The output scanners of a profile: its output-filter engine and entities, plus its redaction's
    custom recognizers, score threshold and allow lists (an allow-listed value is never a finding
    either); with the NER engine, a pattern-engine ``fast`` scanner too (spaCy runs on every call of a NER
    analyzer, whatever entities are asked for, so the fast tier needs an analyzer without it)."""
    redaction, output = profile.redaction, profile.output_filter

    def scanner(entities: list[str], engine: PiiEngine) -> PiiScanner:
        return bootstrap.pii_scanner(entities, redaction.score_threshold, redaction.custom, engine=engine,
                                     allow_list=redaction.allow_list, allow_patterns=redaction.allow_patterns)

    pattern_entities = [e for e in output.entity_types if e in DEFAULT_ENTITIES]
    if output.engine == "pattern" or pattern_entities == output.entity_types:  # nothing needs spaCy
        return OutputScanners(scanner(output.entity_types, "pattern"))
    return OutputScanners(scanner(output.entity_types, "ner"), scanner(pattern_entities, "pattern"))


def build_scanners(config: GatewayConfig, previous: Built[Scanners] | None = None,
                   build: Callable[[Guardrails], OutputScanners] = build_scanner) -> Scanners:
    """The scanners of every active profile of a config (``GatewayConfig.active_profiles``): profiles with
    equal settings share one, and a scanner of ``previous`` (the last build) whose settings did not
    change is kept, not built again."""
    kept = {} if previous is None else {
        scanner_settings(profile): previous.value[name]
        for name, profile in previous.config.active_profiles.items() if name in previous.value}
    built: dict[str, OutputScanners] = {}
    scanners: Scanners = {}
    for name, profile in config.active_profiles.items():
        key = scanner_settings(profile)
        scanner = built.get(key) or kept.get(key)
        if scanner is None:
            scanner = build(profile)
        built[key] = scanners[name] = scanner
    return scanners


def derive_scanners(build: Callable[[Guardrails], OutputScanners] | None = None) -> Derived[Scanners]:
    """The output scanners, derived from the config: rebuilt (in a thread, on hot reload) only when some
    profile's scanner settings changed, and then only the scanners whose settings changed."""
    make = build or build_scanner
    derived: Derived[Scanners] = Derived(lambda config: build_scanners(config, derived.built, make),
                                         inputs=scanner_inputs)
    return derived


def warm(scanners: Scanners) -> None:
    """Every scanner runs once before the first request (presidio and spaCy build caches on first use)."""
    sample = "Warm-up: write to warm.up@example.com or call +1 415 555 0100, Jane Doe in Paris."
    for pair in {id(s): s for s in scanners.values()}.values():
        pair.full.find(sample)
        if pair.fast is not None:
            pair.fast.find(sample)
