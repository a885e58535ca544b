"""Redaction worker: the first hop. Takes each accepted request from the GW_REQ work queue (durable,
end-to-end ack), replaces PII with placeholders, seals the placeholder map into the envelope, and
carries the JetStream ack subject down the core-NATS chain."""

from __future__ import annotations

import warnings
from typing import Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker

from infra import bootstrap
from infra.settings import Settings
from schemas import subjects
from schemas.config import GatewayConfig
from schemas.envelope import Envelope
from stages.pii import PiiScanner
from stages.redaction import redact_embedding_input, redact_request
from stages.vault import seal
from workers.app import Hooks, main
from workers.live_config import Derived
from workers.runtime import StageRuntime, with_stage_time

STAGE = "redaction"


def scanner_inputs(config: GatewayConfig) -> object:
    """What the redaction scanner is built from: a change to any of these rebuilds it."""
    return (config.redaction.entity_types, config.redaction.score_threshold, config.redaction.custom)


def build_scanner(config: GatewayConfig) -> PiiScanner:
    return bootstrap.pii_scanner(config.redaction.entity_types, config.redaction.score_threshold, config)


async def setup(broker: NatsBroker, settings: Settings) -> Hooks:
    live = await bootstrap.live_config(settings, STAGE)
    # (redaction settings, scanner), rebuilt in a thread when the redaction settings change and swapped
    # when ready: each request uses the pair it started with (hot reload).
    scanners = Derived(live.current, scanner_inputs, build_scanner)
    live.on_change(scanners.update)
    key = settings.sealing_key()
    runtime = StageRuntime(broker, STAGE, settings.ack_wait_s)

    async def work(envelope: Envelope, started: float) -> None:
        config, scanner = scanners.current
        embeddings = envelope.endpoint == "embeddings"
        redact = redact_embedding_input if embeddings else redact_request
        result = redact(envelope.body, scanner, config.redaction)
        sealed = result.mapping and not embeddings  # an embedding has nothing to restore
        out = with_stage_time(
            envelope, STAGE, started,
            body=result.body,
            # bound to this request: a sealed map cannot be replayed onto another envelope
            vault=seal(result.mapping, key, aad=envelope.request_id.encode()) if sealed else None,
            redactions=result.counts,
            redacted=True,
        )
        out = runtime.event(out, "request.redacted", started,
                            attrs={"counts": result.counts, "redelivered": envelope.delivery > 1})
        await runtime.forward(subjects.REQ_POLICY, out)

    # A durable push consumer bound with a deliver group (``queue``) is shared by every replica, which
    # FastStream's generic warning does not know; the consumer itself is declared in infra/jetstream.py.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The JetStream Push consumer with the `durable` option")
        subscriber = broker.subscriber(
            subjects.REQ_REDACT,
            stream=JStream(subjects.STREAM_REQUESTS, declare=False),
            durable=subjects.CONSUMER_REDACT,
            queue=subjects.QUEUE_GROUPS[subjects.REQ_REDACT],
            no_reply=True,
            ack_policy=AckPolicy.MANUAL,
        )

    @subscriber
    async def on_request(data: bytes) -> None:
        message: Any = broker.context.get_local("message")
        raw = message.raw_message
        await runtime.run(data, work, delivery=raw.metadata.num_delivered, ack_subject=raw.reply)

    return Hooks(cleanup=live.stop)


if __name__ == "__main__":
    main("redaction", setup)
