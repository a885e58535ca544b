"""What each NATS identity may publish and subscribe to: the subject permissions, as data.

One identity per role (``IDENTITIES``); each gets allow lists built only from ``schemas/subjects.py``
names, and nothing else (a subject not listed is refused by nats-server). Every identity may subscribe
only to its own reply inboxes (``subjects.inbox_prefix``), so no identity reads another's replies; it
may publish into the inboxes of the identities whose requests it answers (``_ANSWERS``: the stages
answer ingress's readiness pings and each other's rerun questions, ingress confirms the stages'
answers, the sink answers the operators' SQL).

Not nats-server's ``allow_responses``: it remembers the reply subject of every message delivered to the
client for two minutes (JetStream deliveries included, whose acks never count as the response) and
walks that whole map every 4,096 messages: at 1,000 requests a second, a map of about a million
entries walked twice a second by the one nats-server thread.

Who may do what (the rest of the chain is refused):

- only ``ingress`` publishes requests into ``GW_REQ`` (``gw.req.redact``) and subscribes to the answers
  (``gw.reply.>``); the stages publish answers there but never read them;
- each stage subscribes only to its own subject and queue group; only ``provider`` to ``gw.req.call``;
- only ``supervisor``, ``admin`` and operators (``op-<name>``) use JetStream's management API (create,
  update, delete streams and consumers) and write the config bucket; keys and limits are written by them
  and by ``ingress`` (the admin API over HTTP, behind its own admin key);
- ``analyst`` may only ask the sink for read-only SQL (``gw.sql.query``);
- only the sink pulls GW_EVENTS' ``sink`` and GW_AUDIT's ``audit`` consumers; only the policy stage the
  ``ledger`` consumer; only redaction pulls GW_REQ (the other stages ack and extend what it took);
- each identity publishes audit entries only on ``gw.audit.by.<identity>``.

``stages`` (a ``workers.host`` process of the hosted layout, and the batch lane's host, ``lane``) runs
every stage, so it holds the union of the five stage roles: least privilege between stages needs
``gateway up --layout split``. Each stage role serves both lanes (interactive and batch).

nats-server caches each subject's verdict per connection: none of this costs per-message work here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas import subjects as s

STAGE_ROLES = ("redaction", "policy", "routing", "provider", "output_filter")
WORKER_IDENTITIES = ("ingress", *STAGE_ROLES, "stages", "sink", "batch")
"""The identities of ``gateway up``'s children (``stages``: a hosted-layout ``workers.host``)."""
IDENTITIES = ("supervisor", *WORKER_IDENTITIES, "admin", "analyst")
OPERATOR_PREFIX = "op-"
"""Operators (``gateway operators add NAME``) are ``op-<NAME>``, with admin's permissions."""


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def as_config(self) -> dict[str, object]:
        """nats-server's ``permissions`` map for one user."""
        return {"publish": {"allow": list(self.publish)}, "subscribe": {"allow": list(self.subscribe)}}


def is_operator(identity: str) -> bool:
    return identity.startswith(OPERATOR_PREFIX) and len(identity) > len(OPERATOR_PREFIX)


def _kv_read(bucket: str) -> list[str]:
    """Read and watch a bucket: its info, direct gets, and the ordered consumers of watchers and key lists."""
    return _stream_read(s.kv_stream(bucket))


def _stream_read(stream: str) -> list[str]:
    return [s.js_stream_api("INFO", stream), s.js_stream_api("MSG.GET", stream), f"{s.JS_API}.DIRECT.GET.{stream}",
            f"{s.JS_API}.DIRECT.GET.{stream}.>", f"{s.JS_API}.CONSUMER.CREATE.{stream}",
            s.js_consumer_api("CREATE", stream, ">"), s.js_consumer_api("INFO", stream, ">"),
            s.js_consumer_api("DELETE", stream, ">"),
            s.js_flow_control(stream)]


def _kv_write(bucket: str) -> list[str]:
    return [*_kv_read(bucket), s.kv_keys(bucket)]


def _obj_write(bucket: str) -> list[str]:
    """An object store's put, get, list and delete: its subjects (chunks and metadata), reads as a
    bucket's, and the purge that drops a replaced or deleted object's chunks."""
    stream = s.obj_stream(bucket)
    # nats-py's object store finds the stream of its chunk and metadata subscriptions by name lookup
    # (``STREAM.NAMES`` with a subject filter: names only, no stream's content)
    return [*_stream_read(stream), s.js_stream_api("PURGE", stream), s.obj_subjects(bucket),
            f"{s.JS_API}.STREAM.NAMES"]


def _pull(stream: str, consumer: str) -> list[str]:
    """Bind to a durable pull consumer, take its messages, ack them."""
    return [s.js_stream_api("INFO", stream), s.js_consumer_api("INFO", stream, consumer),
            s.js_consumer_api("MSG.NEXT", stream, consumer), s.js_ack(stream, consumer)]


def _audit(identity: str) -> list[str]:
    """Its own audit subject only: the subject names the actor (``schemas/audit_actor.py``), and nobody
    publishes on the bare ``gw.audit`` of earlier versions."""
    return [s.audit_subject(identity)]


_WORKER_READS = [*_kv_read(s.BUCKET_CONFIG), *_kv_read(s.BUCKET_KEYS), *_kv_read(s.BUCKET_LIMITS), s.EVT_CONTROL,
                 s.CTL_READY]
"""Every gateway process follows the live config (recording each version it activates on ``gw.evt.control``)
and the key directory, and says when it is ready."""


def _worker(role: str) -> list[str]:
    """What a worker process (``workers/app.py``) subscribes to besides its work: readiness pings for each
    role it runs, the rerun question (``gw.ctl.held.*``) and metrics scrapes (answered into ingress's
    inbox)."""
    return [s.ping_subject(role), s.held_subject("*"), s.METRICS_SCRAPE]


def _broker_gauges() -> list[str]:
    """Read-only: the info of the gateway's streams and durable consumers (``infra/jetstream_metrics.py``:
    counts and positions, never a message)."""
    return [api for stream, consumers in s.DURABLE_CONSUMERS.items()
            for api in (s.js_stream_api("INFO", stream),
                        *(s.js_consumer_api("INFO", stream, consumer) for consumer in consumers))]


def _lanes(*subjects: str) -> list[str]:
    """Each subject in every lane (``schemas/subjects.py`` in_lane): a stage identity serves either lane."""
    return [s.in_lane(subject, lane) for subject in subjects for lane in s.LANES]


_MANAGE = [f"{s.JS_API}.>", s.kv_keys(s.BUCKET_CONFIG), s.EVT_CONTROL]
"""JetStream's whole API (streams, consumers, buckets declared and inspected) and the config bucket."""


def _stage(stage: str) -> tuple[list[str], list[str]]:
    """What every stage does besides its own hop: events, answers, the end-to-end ack, reruns, readiness,
    load reports, the shared ledger (a governed request is settled where it ends)."""
    publish = [s.event_subject(stage), s.governed_event_subject(stage), f"{s.REPLY_PREFIX}.>",
               s.js_ack(s.STREAM_REQUESTS, s.CONSUMER_REDACT), s.js_ack(s.STREAM_REQUESTS, s.CONSUMER_REDACT_BATCH),
               s.held_subject("*"), *_lanes(s.LOAD_REPORT),
               *_kv_write(s.BUCKET_LEDGER)]
    subscribe = [*_worker(stage), s.ping_subject(stage, "batch")]
    own: dict[str, tuple[list[str], list[str]]] = {
        "redaction": ([*_pull(s.STREAM_REQUESTS, s.CONSUMER_REDACT), *_pull(s.STREAM_REQUESTS, s.CONSUMER_REDACT_BATCH),
                       *_lanes(s.REQ_POLICY)], []),
        "policy": ([*_lanes(s.REQ_ROUTE), *_pull(s.STREAM_EVENTS, s.CONSUMER_LEDGER)], _lanes(s.REQ_POLICY)),
        "routing": ([*_lanes(s.REQ_CALL), *_kv_write(s.BUCKET_BREAKERS)], [*_lanes(s.REQ_ROUTE), s.HEALTH_REPORT]),
        "provider": ([*_lanes(s.RESP_FILTER, s.RESP_FILTER_OPEN), f"{s.RESP_FILTER_INSTANCE}.*", s.HEALTH_REPORT,
                      *_kv_read(s.BUCKET_CACHE), *_kv_read(s.BUCKET_CACHE_INDEX)], _lanes(s.REQ_CALL)),
        "output_filter": ([*_kv_write(s.BUCKET_CACHE), *_kv_write(s.BUCKET_CACHE_INDEX)],
                          [*_lanes(s.RESP_FILTER, s.RESP_FILTER_OPEN), f"{s.RESP_FILTER_INSTANCE}.*"]),
    }
    extra_pub, extra_sub = own[stage]
    return publish + extra_pub, subscribe + extra_sub


def _grants(identity: str) -> tuple[list[str], list[str]]:
    """(publish, subscribe) allow lists of one identity, inbox excluded."""
    if identity in STAGE_ROLES:
        publish, subscribe = _stage(identity)
        return _WORKER_READS + publish, subscribe
    if identity == "stages":
        publish, subscribe = list(_WORKER_READS), []
        for stage in STAGE_ROLES:
            p, sub = _stage(stage)
            publish += p
            subscribe += sub
        return publish, subscribe
    if identity == "ingress":
        return ([*_WORKER_READS, s.REQ_REDACT, s.event_subject("ingress"), s.ping_subject("*"),
                 *_kv_write(s.BUCKET_KEYS), *_kv_write(s.BUCKET_LIMITS), *_kv_read(s.BUCKET_LEDGER),
                 *_obj_write(s.BUCKET_FILES), *_kv_write(s.BUCKET_BATCHES), f"{s.RESP_FILTER_INSTANCE}.*",
                 s.METRICS_SCRAPE, *_broker_gauges(), s.SQL_QUERY, *_kv_read(s.BUCKET_BREAKERS),
                 *_audit(identity)],
                [f"{s.REPLY_PREFIX}.>", s.LOAD_REPORT, s.METRICS_SCRAPE])
    if identity == "batch":
        # drives batch jobs: reads input files and writes output files, sends lines into the batch lane of
        # GW_REQ, stores the chain's answers to them (it is who the stages answer for batch lines)
        return ([*_WORKER_READS, s.REQ_BATCH, s.event_subject("batch"), s.LOAD_REPORT, *_kv_write(s.BUCKET_BATCHES),
                 *_obj_write(s.BUCKET_FILES), f"{s.BATCH_RESULT_PREFIX}.>",
                 *_stream_read(s.STREAM_BATCH_RESULTS), s.js_stream_api("PURGE", s.STREAM_BATCH_RESULTS),
                 *_audit(identity)],
                [*_worker("batch"), f"{s.BATCH_REPLY_PREFIX}.>", f"{s.BATCH_RESULT_PREFIX}.>", s.LOAD_REPORT])
    if identity == "sink":
        return ([*_WORKER_READS, *_pull(s.STREAM_EVENTS, s.CONSUMER_SINK), *_pull(s.STREAM_AUDIT, s.CONSUMER_AUDIT),
                 *_kv_write(s.BUCKET_AUDIT_WRITER), s.LOAD_REPORT, *_audit(identity)],
                [*_worker("sink"), s.SQL_QUERY])
    if identity == "supervisor":
        return [*_MANAGE, *_audit(identity)], [s.CTL_READY]
    if identity == "admin" or is_operator(identity):
        return ([*_MANAGE, s.kv_keys(s.BUCKET_KEYS), s.kv_keys(s.BUCKET_LIMITS), s.kv_keys(s.BUCKET_CACHE),
                 s.kv_keys(s.BUCKET_CACHE_INDEX),
                 s.SQL_QUERY, *_audit(identity)],
                [])
    if identity == "analyst":
        return [s.SQL_QUERY], []
    raise ValueError(f"unknown NATS identity {identity!r}: one of {', '.join(IDENTITIES)} or {OPERATOR_PREFIX}<name>")


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


_STAGE_IDENTITIES = (*STAGE_ROLES, "stages")


def _answers(identity: str, operators: Iterable[str]) -> list[str]:
    """Whose requests ``identity`` answers, as the inboxes it may publish into: the stages answer
    ingress (readiness pings, stream resends), the supervisor, and each other (a rerun's "who holds this
    request?", a stream's hand-over to an output filter); ingress confirms the stages' answers; the sink
    answers SQL (the CLI's identities and operators) and readiness pings."""
    if identity in _STAGE_IDENTITIES:
        askers: Iterable[str] = ("ingress", "supervisor", "batch", *_STAGE_IDENTITIES)
    elif identity == "ingress":
        askers = ("ingress", *_STAGE_IDENTITIES)  # and each ingress answers the metrics scrapes of all
    elif identity == "batch":
        askers = ("supervisor", "ingress", *_STAGE_IDENTITIES)
    elif identity == "sink":
        askers = ("admin", "analyst", "supervisor", "ingress", *operators)
    else:
        askers = ()
    return [f"{s.inbox_prefix(asker)}.>" for asker in askers]


def permissions(identity: str, operators: Iterable[str] = ()) -> Permissions:
    """The subjects ``identity`` may publish and subscribe to (``ValueError`` for an unknown identity);
    ``operators``: the ``op-<name>`` identities there are (the sink answers their SQL)."""
    publish, subscribe = _grants(identity)
    return Permissions(publish=_unique([*publish, *_answers(identity, operators)]),
                       subscribe=_unique([f"{s.inbox_prefix(identity)}.>", *subscribe]))


def authorization_block(public_keys: Mapping[str, str]) -> str:
    """nats-server's ``authorization`` block: one nkey user per identity (``{identity: public key}``),
    each with its permissions. Only public keys: the seeds stay in their files."""
    # nats-server's config format reads JSON; one commented user per line keeps the file readable
    operators = sorted(identity for identity in public_keys if is_operator(identity))
    lines = ",\n".join(
        f"    # {identity}\n    "
        + json.dumps({"nkey": key, "permissions": permissions(identity, operators).as_config()})
        for identity, key in sorted(public_keys.items()))
    return f"authorization {{\n  users = [\n{lines}\n  ]\n}}\n"
