"""The config as ingress sees it: a live source (hot reload) and what ingress derives from one version.

In production the source is the process's ``infra.live_config.LiveConfig``, opened at lifespan
startup through ``infra.bootstrap.live_config`` (ingress never imports ``workers/``: it only needs
this protocol). ``ConfigView`` holds what ingress derives from a config (the key index, the models
lists), rebuilt once per new version (``ViewCache``, through ``infra.derived.Derived``); a request
keeps the view it started with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from infra.derived import Derived
from schemas.config import ApiKey, GatewayConfig
from schemas.governance import KeyDirectory, VirtualKey


class ConfigSource(Protocol):
    """Where the config comes from: ``LiveConfig`` (hot reload) or ``StaticConfig``."""

    @property
    def current(self) -> GatewayConfig: ...

    @property
    def version(self) -> str: ...

    async def stop(self) -> None: ...


class KeySource(Protocol):
    """Where keys come from: ``infra.key_directory.LiveKeyDirectory`` (config + GW_KEYS, watched) or
    ``StaticKeys`` (the config's keys only)."""

    def get(self) -> KeyDirectory: ...

    async def stop(self) -> None: ...


ConfigOpener = Callable[[], Awaitable[ConfigSource]]
"""Opens (starts) a live source on the running event loop: ``lambda: bootstrap.live_config(s, "ingress")``."""

KeysOpener = Callable[[ConfigSource], Awaitable[KeySource]]
"""Opens the key directory over the opened config: ``lambda c: bootstrap.key_directory(s, c, "ingress")``."""


class StaticConfig:
    """A config that never changes (tests, embedding ingress in another app)."""

    def __init__(self, config: GatewayConfig, version: str = "static") -> None:
        self._config = config
        self._version = version

    @property
    def current(self) -> GatewayConfig:
        return self._config

    @property
    def version(self) -> str:
        return self._version

    async def stop(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ConfigView:
    """What ingress derives from one config version."""

    config: GatewayConfig
    keys: dict[str, ApiKey]
    models_payload: dict[str, Any]
    anthropic_models_payload: dict[str, Any]

    @classmethod
    def of(cls, config: GatewayConfig) -> ConfigView:
        aliases = sorted(config.models)
        return cls(config=config, keys={k.key_sha256: k for k in config.keys},
                   models_payload=openai_models(aliases), anthropic_models_payload=anthropic_models(aliases))

    def models_for(self, key: VirtualKey, anthropic: bool) -> dict[str, Any]:
        """``/v1/models`` for a caller: only the aliases its key may use (the cached list for ``*``)."""
        if "*" in key.models:
            return self.anthropic_models_payload if anthropic else self.models_payload
        aliases = sorted(alias for alias in self.config.models if key.allows(alias))
        return anthropic_models(aliases) if anthropic else openai_models(aliases)


def openai_models(aliases: list[str]) -> dict[str, Any]:
    return {"object": "list",
            "data": [{"id": alias, "object": "model", "created": 0, "owned_by": "gateway"} for alias in aliases]}


def anthropic_models(aliases: list[str]) -> dict[str, Any]:
    return {
        "data": [{"id": alias, "type": "model", "display_name": alias,
                  "created_at": "1970-01-01T00:00:00Z"} for alias in aliases],
        "has_more": False,
        "first_id": aliases[0] if aliases else None,
        "last_id": aliases[-1] if aliases else None,
    }


class ViewCache:
    """The view of the source's current version: ``ConfigView`` derived once per version
    (``infra.derived.Derived``: one string comparison per request otherwise)."""

    def __init__(self, source: ConfigSource | None = None) -> None:
        self.source = source
        self.views: Derived[ConfigView] = Derived(ConfigView.of)

    def get(self) -> ConfigView:
        source = self.source
        if source is None:
            raise RuntimeError("ingress config not opened yet (lifespan startup)")
        return self.views.get(source.version, source.current)
