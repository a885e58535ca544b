"""Process settings from the environment (pydantic-settings). The config *file* is in ``schemas.config``."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.private_files import key_file


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    nats_url: str | None = Field(default=None, validation_alias=AliasChoices("NATS_URL", "GATEWAY_NATS_URL"))
    clickhouse_url: str | None = Field(
        default=None, validation_alias=AliasChoices("CLICKHOUSE_URL", "GATEWAY_CLICKHOUSE_URL")
    )
    config: Path = Path("config/gateway.yaml")
    data_dir: Path = Path(".gateway")
    host: str = "127.0.0.1"
    port: int = 8080
    # The embedded nats-server's port (used only when NATS_URL is not given).
    nats_port: int = 4222
    # This process's NATS identity (GATEWAY_NATS_CREDS): the path of its nkey seed file
    # (<data_dir>/nats/creds/<identity>.nk, infra/nats_creds.py) or of a NATS ``.creds`` file (a user JWT
    # and seed, for an external server in operator mode). `gateway up` gives each child its own; the CLI
    # defaults to admin.nk (analyst.nk for `gateway sql`) under the data dir.
    nats_creds: Path | None = None
    # AES-GCM key (base64, 32 bytes) sealing the PII placeholder map in envelopes. Embedded default:
    # generated once under data_dir. Only the redaction and output-filter stages read it.
    envelope_key: SecretStr | None = None
    # JetStream redelivers a request this long after the last sign of life from the process holding it
    # (end-to-end ack; a live process signals every ack_wait/4): the recovery time after a crash.
    ack_wait_s: float = Field(default=2.0, gt=0.2)
    max_deliver: int = Field(default=10, ge=1)
    # Requests in the chain at once, across every replica (taken from GW_REQ, not yet acked): the rest
    # wait in the stream. Provider calls in flight count, so it is large.
    max_ack_pending: int = Field(default=20_000, ge=1)
    # Requests one process takes from GW_REQ beyond those its first stage still works on.
    intake_inflight: int = Field(default=64, ge=1)
    # Ingress sheds load (503 + Retry-After) when even the fastest request of the last half second spent
    # this long queued in the gateway, and past this many requests waiting at one ingress process.
    shed_after_ms: float = Field(default=1000.0, gt=0)
    max_pending: int = Field(default=10_000, ge=1)
    # Concurrency of provider calls per provider-stage replica.
    max_inflight_calls: int = Field(default=2_048, ge=1)
    # The response cache's bucket (GW_CACHE): its size limit (the oldest entries are dropped past it).
    cache_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    cache_index_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)
    # Sink batching. Each batch costs ≈ 45 ms CPU in chDB whatever its size (three tables and a rollup,
    # measured 2026-12-03) plus ≈ 0.25 ms per request, so at low load the window, not the row count, sets
    # the sink's cost per request: a 1 s window halves it against 500 ms (rows land within ~1 s).
    sink_batch_rows: int = Field(default=5_000, ge=1)
    sink_batch_ms: float = Field(default=1000.0, gt=0)
    # How often the sink writes the audit chain's anchor (its latest seq and hash) to its log and to
    # gateway_events (GATEWAY_AUDIT_ANCHOR_MINUTES); also at every sink shutdown.
    audit_anchor_minutes: float = Field(default=10.0, gt=0)
    # The admin API's key, as its SHA-256 hex (GATEWAY_ADMIN_KEY_SHA256); the config's admin.key_sha256
    # works too. Neither set: the admin API is off.
    admin_key_sha256: str | None = None
    # The HTTP edge's bounds on what a client sends (ingress/http_protocol.py, ingress/asgi.py): a request's
    # headers must arrive within header_timeout_s of its first byte and its body within body_timeout_s of
    # the first read (else 408, connection closed); a header section over max_header_bytes or
    # max_headers is a 431.
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    max_headers: int = Field(default=128, ge=16)
    # The Files API's upload limit in bytes (GATEWAY_MAX_FILE_BYTES; OpenAI's batch input limit, 200 MB):
    # an upload past it is cut with a 413 while it arrives.
    max_file_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    # Batch lines (batch jobs and async requests) in the chain at once, across every replica: the batch
    # lane's own bound (GATEWAY_BATCH_LANE_MAX), apart from interactive requests. Each batch driver also
    # keeps at most batch_concurrency lines of its jobs in flight (halved while a worker process reports
    # a late event loop, so interactive traffic keeps its latency), at most batch_tenant_concurrency of
    # one tenant's.
    batch_lane_max: int = Field(default=256, ge=1)
    batch_concurrency: int = Field(default=64, ge=1)
    batch_tenant_concurrency: int = Field(default=32, ge=1)
    # How long one batch line may take in the chain before its driver sends it again (its answer lost).
    batch_line_timeout_s: float = Field(default=600.0, gt=0)
    # The name `gateway up` gives this child (e.g. batch.0), set per child: a restarted batch worker takes
    # back the leases of the jobs it drove at once, instead of waiting for them to run out.
    process_name: str = ""
    # Which requests this stage process serves (GATEWAY_LANE): ``interactive`` (the callers who wait) or
    # ``batch`` (batch jobs' lines and async requests: their own subjects, consumer and processes, run at
    # the lowest CPU priority; schemas/subjects.py in_lane). `gateway up` starts the batch lane's host.
    lane: Literal["interactive", "batch"] = "interactive"
    log_level: str = "INFO"
    # Every this many seconds each worker process logs what it holds (requests, tasks, streams); 0: never.
    stats_every_s: float = Field(default=60.0, ge=0)

    def clickhouse_dsn(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    def sealing_key(self) -> bytes:
        """The envelope key: ``GATEWAY_ENVELOPE_KEY`` (base64, 32 bytes), else ``data_dir/envelope.key``,
        created once, owner-only (0600), and safe when several processes start at once
        (``infra.private_files.key_file``)."""
        if self.envelope_key is not None:
            source, text = "GATEWAY_ENVELOPE_KEY", self.envelope_key.get_secret_value().encode()
        else:
            path = key_file(self.data_dir / "envelope.key")
            source, text = str(path), path.read_bytes()
        try:
            key = base64.b64decode(text, validate=True)
        except binascii.Error:
            key = b""
        if len(key) != 32:
            raise ValueError(f"{source} must hold a 32-byte key, base64-encoded; make one with "
                             "python -c \"import base64, os; print(base64.b64encode(os.urandom(32)).decode())\" "
                             "and give every ingress, redaction and output-filter process the same one")
        return key

