"""The active config in JetStream: bucket ``GW_CONFIG``, key ``active`` (hot reload).

One value, JSON: ``{"version", "yaml", "source", "applied_at"}``. ``version`` is ``version_of(yaml)``
(the first 12 hex digits of its SHA-256), ``source`` says who put it (``file:/abs/path`` from
``gateway up``, ``apply:nats:<identity>`` from ``gateway config apply``: the NATS identity it connected
as, e.g. ``apply:nats:admin``). Every worker watches the key
(``infra/live_config.py``); the bucket keeps the last 16 revisions.

``publish_config`` is the only writer: it validates first (an invalid config is refused with the
``ConfigError`` naming the bad path and nothing is written), then puts the value and records a
``ControlEvent`` (``kind="config"``, ``reason="applied"``) on ``gw.evt.control`` for the sink and, when
the version changed, an audit entry (``infra/audit_log.py``: published as the caller's NATS identity,
which the chain records as the actor; from and to which version, the source, the sections, providers,
models, guardrail profiles and config keys it changed, by name only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from infra.audit_log import record
from infra.config import ConfigCheck, ConfigError, parse_config_text, version_of
from schemas import subjects
from schemas.audit_actor import nats_actor
from schemas.audit_detail import config_changes, config_entry
from schemas.config import GatewayConfig
from schemas.events import ControlAttrs, ControlEvent
from schemas.ids import uuid7
from schemas.wire import JSONValue, encode


@dataclass(frozen=True, slots=True)
class ActiveConfig:
    """One value of the config key, as stored (``revision``: the KV revision it was read at)."""

    version: str
    yaml: str
    source: str
    applied_at: float
    revision: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps({"version": self.version, "yaml": self.yaml, "source": self.source,
                             "applied_at": self.applied_at})

    @classmethod
    def from_json(cls, data: bytes, revision: int = 0) -> ActiveConfig:
        """Decode a stored value; ``ConfigError`` if it is not one (someone bypassed ``publish_config``)."""
        where = f"{subjects.BUCKET_CONFIG}/{subjects.CONFIG_KEY} revision {revision}"
        try:
            value: Any = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a JSON object")
        text, version, source = value.get("yaml"), value.get("version"), value.get("source", "")
        applied_at = value.get("applied_at", 0.0)
        if not isinstance(text, str) or not isinstance(version, str) or not isinstance(source, str) \
                or not isinstance(applied_at, int | float):
            raise ConfigError(f"{where}: expected string 'yaml', 'version', 'source' and a number 'applied_at'")
        if version != version_of(text):
            raise ConfigError(f"{where}: version {version!r} is not the hash of its yaml ({version_of(text)})")
        return cls(version=version, yaml=text, source=source, applied_at=float(applied_at), revision=revision)

    @property
    def label(self) -> str:
        """What errors about this value start with: where it is stored and who put it."""
        return f"{subjects.BUCKET_CONFIG}/{subjects.CONFIG_KEY} revision {self.revision} ({self.source})"

    def parse(self, check: ConfigCheck) -> GatewayConfig:
        return parse_config_text(self.yaml, self.label, check=check)


async def config_bucket(js: JetStreamContext) -> KeyValue:
    """The config bucket (declared by ``infra/jetstream.py: declare``); ``BucketNotFoundError`` if not."""
    return await js.key_value(subjects.BUCKET_CONFIG)


async def fetch_active(js: JetStreamContext) -> ActiveConfig | None:
    """The active config, or None when none was published yet (or the bucket does not exist).

    ``ConfigError`` when the stored value is not a config value at all."""
    try:
        kv = await config_bucket(js)
        entry = await kv.get(subjects.CONFIG_KEY)
    except NotFoundError:  # no bucket, no key, or the key was deleted
        return None
    if entry.value is None:
        return None
    return ActiveConfig.from_json(entry.value, entry.revision or 0)


async def publish_config(js: JetStreamContext, text: str, source: str, *, check: ConfigCheck, identity: str,
                         label: str | None = None, attrs: ControlAttrs | None = None,
                         reported_by: str | None = None) -> str:
    """Validate ``text``, make it the active config, record it; returns its version.

    ``identity`` is the publishing process's NATS identity: the audit entry goes out on its subject (the
    actor the chain records). ``reported_by`` (the CLI's ``user@host``) is kept in the entry's detail as
    an unauthenticated hint. An invalid config raises ``ConfigError`` (its message starts with ``label``,
    default ``source``, and names the bad path) and is NOT written. ``attrs`` go into the recorded
    ``ControlEvent``."""
    parse_config_text(text, label or source, check=check)
    version = version_of(text)
    kv = await config_bucket(js)
    try:
        previous = await fetch_active(js)
    except ConfigError:  # whatever is there is not a config: replace it
        previous = None
    value = ActiveConfig(version=version, yaml=text, source=source, applied_at=time.time())
    await kv.put(subjects.CONFIG_KEY, value.to_json())
    event = ControlEvent(
        event_id=uuid7(), ts=value.applied_at, kind="config", subject=version,
        from_state=previous.version if previous else "", to_state=version, reason="applied",
        source=source, config_version=version, attrs=attrs or ControlAttrs(),
    )
    await js.publish(subjects.EVT_CONTROL, encode(event))
    if previous is None or previous.version != version:
        summary = config_changes(_plain_yaml(previous.yaml) if previous else None, _plain_yaml(text))
        extra: dict[str, JSONValue] = {"source": source}
        if attrs is not None and isinstance(attrs.file, str):
            extra["file"] = attrs.file
        if reported_by is not None:
            extra["reported_by"] = reported_by
        entry = config_entry(version, previous.version if previous else "", nats_actor(identity),
                             value.applied_at, summary, **extra)
        await record(js, entry, identity)
    return version


def _plain_yaml(text: str) -> dict[str, JSONValue]:
    """The config as plain JSON values (dates and other YAML scalars as text), for the audit's diff."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    plain: JSONValue = orjson.loads(orjson.dumps(loaded, default=str, option=orjson.OPT_NON_STR_KEYS))
    return plain if isinstance(plain, dict) else {}
