"""The broker's queues as Prometheus gauges, read at scrape time: each stream's messages and bytes, and
each durable consumer's backlog (``num_pending``: not yet delivered), work in hand (``num_ack_pending``:
delivered, not acked), redeliveries in flight (``num_redelivered``) and waiting pulls.

``GW_REQ``'s consumers are the chain's queues (interactive ``redaction``, ``redaction_batch`` for the
batch lane); ``GW_EVENTS``' ``sink`` is analytics' lag, ``ledger`` the settlements left to the fallback;
``GW_AUDIT``'s ``audit`` the audit chain's writer."""

from __future__ import annotations

import contextlib

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from schemas import subjects


async def jetstream_families(js: JetStreamContext, *, timeout_s: float = 1.0) -> list[Metric]:
    """The gauges of every stream and durable consumer the gateway declares (a missing one is left out)."""
    messages = GaugeMetricFamily("gateway_stream_messages", "Messages stored in a JetStream stream.", labels=["stream"])
    size = GaugeMetricFamily("gateway_stream_bytes", "Bytes stored in a JetStream stream.", labels=["stream"])
    labels = ["stream", "consumer"]
    pending = GaugeMetricFamily("gateway_consumer_pending_messages", "Messages not yet delivered to a durable "
                                "consumer (its backlog).", labels=labels)
    ack_pending = GaugeMetricFamily("gateway_consumer_ack_pending_messages", "Messages delivered to a consumer "
                                    "and not acked yet (work in hand).", labels=labels)
    redelivered = GaugeMetricFamily("gateway_consumer_redelivered_messages", "Messages of a consumer delivered "
                                    "more than once and not acked yet.", labels=labels)
    waiting = GaugeMetricFamily("gateway_consumer_waiting_pulls", "Pull requests waiting on a consumer (idle "
                                "capacity of its pullers).", labels=labels)
    for stream, consumers in subjects.DURABLE_CONSUMERS.items():
        with contextlib.suppress(NotFoundError):
            info = await js.stream_info(stream)
            messages.add_metric([stream], info.state.messages)
            size.add_metric([stream], info.state.bytes)
        for consumer in consumers:
            with contextlib.suppress(NotFoundError):
                c = await js.consumer_info(stream, consumer, timeout=timeout_s)
                pending.add_metric([stream, consumer], c.num_pending or 0)
                ack_pending.add_metric([stream, consumer], c.num_ack_pending or 0)
                redelivered.add_metric([stream, consumer], c.num_redelivered or 0)
                waiting.add_metric([stream, consumer], c.num_waiting or 0)
    return [messages, size, pending, ack_pending, redelivered, waiting]
