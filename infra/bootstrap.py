"""The one place where things are built: broker, config, HTTP client, PII scanner, price book, store."""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from infra import config as config_files
from infra.settings import Settings
from schemas.config import CustomRecognizer, GatewayConfig, PiiEngine

if TYPE_CHECKING:
    from faststream.nats import NatsBroker

    from infra.clickhouse.store import Store
    from infra.key_directory import ConfigLike, LiveKeyDirectory
    from infra.live_config import LiveConfig
    from stages.cost import PriceBook
    from stages.pii import PiiScanner


def settings() -> Settings:
    return Settings()


def check_config(config: GatewayConfig) -> list[str]:
    """The gateway's ``ConfigCheck``: build every guardrail list of the config once (the top-level one
    and each profile's own) and return what cannot be built, as ``path: message`` lines (unknown
    guardrail, settings refused by the guardrail's class, redact on one that cannot)."""
    from stages.guardrails.runner import GuardrailSet, SpecError

    lists = [("guardrails", config.guardrails)] + [
        (f"guardrail_profiles.{name}.guardrails", profile.guardrails)
        for name, profile in config.guardrail_profiles.items() if profile.guardrails is not None]
    problems: list[str] = []
    for prefix, specs in lists:
        try:
            GuardrailSet(specs)
        except SpecError as exc:
            problems.extend(f"{path}: {message}" for path, message in exc.under(prefix).problems)
    return problems


def parse_config(data: Any, source: str = "<config>") -> GatewayConfig:
    """``infra.config.parse_config`` with the gateway's checks."""
    return config_files.parse_config(data, source, check=check_config)


def parse_config_text(text: str, source: str = "<config>") -> GatewayConfig:
    """``infra.config.parse_config_text`` with the gateway's checks (``gateway config apply``)."""
    return config_files.parse_config_text(text, source, check=check_config)


def load_config(path: Path) -> GatewayConfig:
    """``infra.config.load_config`` with the gateway's checks (``gateway up``, ``gateway config check``)."""
    return config_files.load_config(path, check=check_config)


def config(s: Settings) -> GatewayConfig:
    return load_config(s.config)


def nats_url(s: Settings) -> str:
    if not s.nats_url:
        raise RuntimeError("NATS_URL is not set (gateway up sets it for every worker)")
    return s.nats_url


async def live_config(s: Settings, name: str) -> LiveConfig:
    """The process's live config (hot reload), started: loaded from the KV (or the config file when
    nothing was published yet) and watched. Build it in a worker's ``setup``, before subscribing."""
    from infra.live_config import LiveConfig

    live = LiveConfig(s.config, name, check=check_config)
    await live.start(nats_url(s))
    return live


async def key_directory(s: Settings, config: ConfigLike, name: str) -> LiveKeyDirectory:
    """The process's live key directory (the config's keys and the GW_KEYS/GW_LIMITS buckets, watched),
    started: every process that authenticates or resolves keys builds one after its live config."""
    from infra.key_directory import LiveKeyDirectory

    directory = LiveKeyDirectory(config, name)
    await directory.start(nats_url(s))
    return directory


def broker(s: Settings, name: str, *, reconnected_cb: Callable[[], Awaitable[None]] | None = None) -> NatsBroker:
    from infra.nats_connect import make_broker

    return make_broker(nats_url(s), name, reconnected=reconnected_cb)


def http_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    """One shared HTTP transport per provider worker, with as many connections per host as calls may be
    in flight (``max_inflight_calls``); timeouts are set per call.

    Our transport (``infra/http_transport``) under httpx's request and response types: httpx's default
    transport costs 250 µs–2.3 ms CPU per call here, growing with the calls in flight; ours ≈ 40 µs at
    any concurrency. The provider stage calls it without an ``httpx.AsyncClient`` around it (see
    ``workers/provider_calls.py``)."""
    from infra.http_transport import FastAsyncTransport

    return FastAsyncTransport(max_connections_per_host=max_connections, keepalive_expiry_s=30.0)


_ANALYZERS_LOCK = threading.Lock()
_ANALYZERS: dict[tuple[str, tuple[str, ...]], Any] = {}
_ANALYZERS_KEPT = 16  # distinct (engine, custom) pairs kept; the oldest beyond that is dropped


def pii_scanner(
    entities: Sequence[str],
    score_threshold: float,
    custom: Sequence[CustomRecognizer],
    *,
    engine: PiiEngine = "pattern",
    allow_list: Sequence[str] = (),
    allow_patterns: Sequence[str] = (),
) -> PiiScanner:
    """A scanner for ``entities`` (built-in ones; the ``custom`` recognizers' entities are added).

    The presidio analyzer behind it is built once per distinct ``(engine, custom)`` in the process
    (≈1.6 s, ≈1 s more for the NER model) and shared by every scanner asking for the same pair (guardrail
    profiles, the input and output stages, config reloads). Thread-safe: scanners are built in threads."""
    from infra.presidio import build_analyzer
    from stages.pii import PiiScanner

    key = (engine, tuple(c.model_dump_json() for c in custom))
    with _ANALYZERS_LOCK:
        analyzer = _ANALYZERS.get(key)
        if analyzer is None:
            analyzer = build_analyzer(custom, engine=engine)
            _ANALYZERS[key] = analyzer
            while len(_ANALYZERS) > _ANALYZERS_KEPT:
                del _ANALYZERS[next(iter(_ANALYZERS))]
    names = [c.entity for c in custom]
    return PiiScanner(analyzer, [*entities, *names], score_threshold,
                      allow_list=allow_list, allow_patterns=allow_patterns, patterns=custom_patterns(custom))


def custom_patterns(custom: Sequence[CustomRecognizer]) -> list[str]:
    """What the custom recognizers match, as regexes (matched the way presidio does: ignoring case,
    ``.`` matching newlines): each one's pattern, and its deny list as one alternation of whole words."""
    patterns: list[str] = []
    for spec in custom:
        if spec.pattern:
            patterns.append(spec.pattern)
        if spec.deny_list:
            words = "|".join(re.escape(word) for word in spec.deny_list)
            patterns.append(rf"(?<!\w)(?:{words})(?!\w)")
    return patterns


def price_book(config: GatewayConfig) -> PriceBook:
    """The shipped catalog (``infra/prices.yaml``), then the config's ``prices`` over it."""
    from infra.prices import load_catalog
    from stages.cost import PriceBook

    return PriceBook(load_catalog(), config.prices)


def store(s: Settings) -> Store:
    from infra.clickhouse.store import open_store

    return open_store(s.clickhouse_dsn())
