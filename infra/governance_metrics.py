"""Budgets and rate limits as Prometheus gauges, read at scrape time from the shared ledger (``GW_LEDGER``)
and the key directory: per limited scope (``key.k1``, ``team.x``, ``tenant.t``, ``key.k1.m.gpt-4o``),
what it spent in its current budget period and holds for requests in flight, its budget, and its requests
and tokens in the last minute against its RPM/TPM. Alert on ``spent / limit`` in PromQL.

Scopes come from the ledger's keys: only scopes that have seen traffic have an entry. At most
``max_scopes`` are read per scrape (each is one key-value read); the rest are counted in
``gateway_limit_scopes_skipped``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

from nats.js import JetStreamContext
from nats.js.errors import NoKeysError, NotFoundError
from nats.js.kv import KeyValue
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from schemas import subjects
from schemas.governance import KeyDirectory, LedgerState, Limits, nusd_to_usd, period_id
from schemas.wire import DecodeError, decode

MAX_SCOPES = 2000


def limits_of(directory: KeyDirectory, scope: str) -> tuple[int | None, int | None, Limits | None]:
    """(rpm, tpm, the level's limits) of a ledger scope as configured now; Nones when it has none."""
    kind, _, rest = scope.partition(".")
    level_id, _, model = rest.partition(".m.")
    limits: Limits | None = None
    if kind == "key":
        found = directory.by_id(level_id)
        limits = found.limits if found is not None else None
    elif kind in ("team", "tenant"):
        level_kind: Literal["team", "tenant"] = "team" if kind == "team" else "tenant"
        policy = directory.level(level_kind, level_id)
        limits = policy.limits if policy is not None else None
    if limits is None:
        return None, None, None
    if model:
        per_model = limits.per_model.get(model)
        return (per_model.rpm, per_model.tpm, None) if per_model is not None else (None, None, None)
    return limits.rpm, limits.tpm, limits


async def governance_families(js: JetStreamContext, directory: KeyDirectory, now: float, *,
                              max_scopes: int = MAX_SCOPES) -> list[Metric]:
    labels = ["scope"]
    spent = GaugeMetricFamily("gateway_budget_spent_usd", "Spent in the scope's current budget period.", labels=labels)
    held = GaugeMetricFamily("gateway_budget_held_usd", "Reserved for the scope's requests in flight.", labels=labels)
    budget = GaugeMetricFamily("gateway_budget_limit_usd", "The scope's budget per period.", labels=labels)
    requests = GaugeMetricFamily("gateway_rate_limit_requests", "The scope's requests in the last minute.",
                                 labels=labels)
    rpm = GaugeMetricFamily("gateway_rate_limit_requests_limit", "The scope's requests per minute allowed.",
                            labels=labels)
    tokens = GaugeMetricFamily("gateway_rate_limit_tokens", "The scope's tokens in the last minute.", labels=labels)
    tpm = GaugeMetricFamily("gateway_rate_limit_tokens_limit", "The scope's tokens per minute allowed.", labels=labels)
    families: list[Metric] = [spent, held, budget, requests, rpm, tokens, tpm]
    kv = await js.key_value(subjects.BUCKET_LEDGER)
    try:
        names = sorted(await kv.keys())
    except NoKeysError:
        names = []
    skipped = max(0, len(names) - max_scopes)
    entries = await asyncio.gather(*(_read(kv, name) for name in names[:max_scopes]))
    for name, state in zip(names, entries, strict=False):
        if state is None:
            continue
        scope = name  # a ledger key is a valid KV key as it is (infra/ledger.py kv_key)
        scope_rpm, scope_tpm, limits = limits_of(directory, scope)
        if limits is not None:
            spent.add_metric([scope], float(nusd_to_usd(state.spent_in(period_id(limits.budget_period, now)))))
            if limits.budget_usd is not None:
                budget.add_metric([scope], float(limits.budget_usd))
        held_nusd, _ = state.held(now)
        held.add_metric([scope], float(nusd_to_usd(held_nusd)))
        in_minute, tokens_in_minute = state.in_window(now)
        requests.add_metric([scope], in_minute)
        tokens.add_metric([scope], tokens_in_minute)
        if scope_rpm is not None:
            rpm.add_metric([scope], scope_rpm)
        if scope_tpm is not None:
            tpm.add_metric([scope], scope_tpm)
    families.append(GaugeMetricFamily("gateway_limit_scopes_skipped", "Limited scopes left out of this scrape "
                                      "(past the per-scrape bound).", value=skipped))
    return families


async def _read(kv: KeyValue, name: str) -> LedgerState | None:
    with contextlib.suppress(NotFoundError, DecodeError):
        entry = await kv.get(name)
        if entry.value:
            return decode(entry.value, LedgerState)
    return None
