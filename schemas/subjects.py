"""NATS subjects and JetStream names: the only place they are spelled."""

from __future__ import annotations

# The request chain. The first hop is a JetStream work queue (durable, end-to-end ack);
# the rest are core NATS subjects served by queue groups.
REQ_REDACT = "gw.req.redact"
# The batch lane: lines of batch jobs and async requests enter GW_REQ here, taken through a consumer of
# their own (CONSUMER_REDACT_BATCH: its own concurrency) by the batch lane's stage processes, which pass
# them along the lane's own subjects (in_lane) and run at the lowest CPU priority: a batch line never
# queues ahead of an interactive request in a stage, and takes only the CPU interactive work leaves.
REQ_BATCH = "gw.req.batch"
LANES = ("interactive", "batch")
REQ_POLICY = "gw.req.policy"
REQ_ROUTE = "gw.req.route"
REQ_CALL = "gw.req.call"
RESP_FILTER = "gw.resp.filter"
# A stream's opening: the provider stage asks the filter queue group for a replica to take the stream.
RESP_FILTER_OPEN = "gw.resp.filter.open"
# A filter replica's own subject for the chunks of the streams it has taken (and the pings and resend
# requests about them): gw.resp.filter.inst.<id>
RESP_FILTER_INSTANCE = "gw.resp.filter.inst"

# Events, captured by the file-backed GW_EVENTS stream: gw.evt.<stage>
EVT_PREFIX = "gw.evt"
EVT_ALL = "gw.evt.>"

# The records of requests that hold ledger reservations (schemas/governance.py Admission.scopes) and
# could not be settled where they ended (workers/settlement.py): gw.evt.governed.<stage>. Still under
# gw.evt.> for the sink; the ledger consumer takes only these, so a request settled where it ended (the
# normal case) or without limits costs it nothing.
EVT_GOVERNED_ALL = "gw.evt.governed.>"

# Control-plane events (breaker transitions, config versions), captured by GW_EVENTS too.
EVT_CONTROL = "gw.evt.control"

# The audit log (schemas/audit.py): every control-plane change and guardrail block, captured by the
# file-backed GW_AUDIT stream, whose one order is the hash chain's order (the sink's ``audit`` consumer).
# A process publishes its entries on gw.audit.by.<its NATS identity> (audit_subject): the broker lets
# identity X publish only on gw.audit.by.X, so the subject an entry arrived on names its publisher, and
# the chain writer takes the actor from it (schemas/audit_actor.py). AUDIT, the bare subject of earlier
# versions (no identity), stays captured so entries published before an upgrade are still chained.
AUDIT = "gw.audit"
AUDIT_PREFIX = "gw.audit.by"
AUDIT_ALL = "gw.audit.>"
AUDIT_SUBJECTS = (AUDIT, AUDIT_ALL)

# Per-target call outcomes, from every provider replica to every routing replica (core NATS, fan-out):
# the live latency, in-flight counts and failure windows behind smart routing and circuit breakers.
HEALTH_REPORT = "gw.health.report"

# Load: a busy worker process reports how late its event loop runs ({"process", "pid", "stages",
# "lag_ms"}), so ingress sheds load before the queue shows in answers (fan-out, no queue group).
LOAD_REPORT = "gw.load.report"
# (A batch lane process reports on in_lane(LOAD_REPORT, "batch"): its lateness is the lane's, never a
# reason for ingress to shed interactive requests.)

# Metrics: a scrape asks every gateway process at once (no queue group); each answers with its
# Prometheus text exposition (infra/metrics_exposition.py), merged by the ingress serving /metrics.
METRICS_SCRAPE = "gw.metrics.scrape"

# JetStream key-value buckets: the active config (key ``active``) and each target's breaker state
# (key: workers/health_wire.py breaker_key), shared by every replica.
BUCKET_CONFIG = "GW_CONFIG"
CONFIG_KEY = "active"
BUCKET_BREAKERS = "GW_BREAKERS"
# The response cache (stages/cache.py): one entry per cache key (<tenant>.<alias>.<hash>, encoded), answers
# with the request's placeholders in them, never its values.
BUCKET_CACHE = "GW_CACHE"
BUCKET_CACHE_INDEX = "GW_CACHE_INDEX"
"""The semantic cache's index: one record per semantically cached answer, under the answer's key."""
# Governance (schemas/governance.py): virtual keys (key.<id>), team and tenant policies
# (team.<id>, tenant.<id>), and the shared ledger of spend, holds and rate windows (compare-and-set).
BUCKET_KEYS = "GW_KEYS"
BUCKET_LIMITS = "GW_LIMITS"
BUCKET_LEDGER = "GW_LEDGER"
# The audit chain's writer lock (key ``writer``, entries expire): only the sink holding it writes audit_log.
BUCKET_AUDIT_WRITER = "GW_AUDIT_WRITER"
# The Files API's object store (``/v1/files``, infra/file_store.py): one object per file, named by its id,
# its owner tenant, purpose, filename and creation time in the object's headers.
BUCKET_FILES = "GW_FILES"
OBJ_STREAM_PREFIX = "OBJ_"

# Analyst queries against the embedded store, answered by the sink (request/reply).
SQL_QUERY = "gw.sql.query"

# Control: each worker announces here once its subscriptions are live ({"name", "process", "pid"}).
CTL_READY = "gw.ctl.ready"
# Which process holds a request: a rerun asks gw.ctl.held.<request_id> (every worker process, no queue
# group) before it runs; a process holding an earlier delivery answers.
HELD_PREFIX = "gw.ctl.held"

# Readiness: every replica of a stage answers requests on gw.ping.<stage> (queue group <stage>) once it can
# take requests (subscribed, models loaded). No responders = no live replica of that stage.
PING_PREFIX = "gw.ping"

# Each ingress replica's inbox for answers: gw.reply.<ingress_id>.<request_id>
REPLY_PREFIX = "gw.reply"
# The answers to batch lines: gw.reply.batch.<job_id>.<line>, served by the batch replicas' queue group
# (any live replica stores the answer; no ingress id is ever "batch": ingress ids are hex).
BATCH_REPLY_PREFIX = "gw.reply.batch"
BATCH_QUEUE = "batch"
# Each batch line's answer, stored once (GW_BATCH_RESULTS, one message per subject):
# gw.batch.result.<job_id>.<line>
BATCH_RESULT_PREFIX = "gw.batch.result"
STREAM_BATCH_RESULTS = "GW_BATCH_RESULTS"
# Batch jobs (schemas/batches.py), by key job.<id>, and each job's driver lease, lease.<id>
BUCKET_BATCHES = "GW_BATCHES"

STREAM_REQUESTS = "GW_REQ"
STREAM_EVENTS = "GW_EVENTS"
CONSUMER_REDACT = "redaction"
CONSUMER_REDACT_BATCH = "redaction_batch"
CONSUMER_SINK = "sink"
STREAM_AUDIT = "GW_AUDIT"
CONSUMER_AUDIT = "audit"  # the sink's chain writer (one puller: the single writer of audit_log)
CONSUMER_LEDGER = "ledger"  # the policy replicas' settlement of every request's record (GW_EVENTS)

DURABLE_CONSUMERS = {
    STREAM_REQUESTS: (CONSUMER_REDACT, CONSUMER_REDACT_BATCH),
    STREAM_EVENTS: (CONSUMER_SINK, CONSUMER_LEDGER),
    STREAM_AUDIT: (CONSUMER_AUDIT,),
    STREAM_BATCH_RESULTS: (),
}
"""Each stream the gateway declares and its durable consumers (their gauges: infra/jetstream_metrics.py)."""

QUEUE_GROUPS = {
    REQ_REDACT: "redaction",
    REQ_POLICY: "policy",
    REQ_ROUTE: "routing",
    REQ_CALL: "provider",
    RESP_FILTER: "output_filter",
}


def in_lane(subject: str, lane: str) -> str:
    """A hop's subject in ``lane``: the interactive lane's is the subject itself, another lane's has the
    lane's name appended (``gw.req.policy.batch``), so each lane's stage processes serve only its own."""
    return subject if lane == "interactive" else f"{subject}.{lane}"


def event_subject(stage: str) -> str:
    return f"{EVT_PREFIX}.{stage}"


def governed_event_subject(stage: str) -> str:
    return f"{EVT_PREFIX}.governed.{stage}"


def ping_subject(stage: str, lane: str = "interactive") -> str:
    """Where a stage's replicas of ``lane`` answer readiness pings (ingress asks the interactive lane's)."""
    return in_lane(f"{PING_PREFIX}.{stage}", lane)


def held_subject(request_id: str) -> str:
    return f"{HELD_PREFIX}.{request_id}"


def audit_subject(identity: str) -> str:
    """Where NATS identity ``identity`` publishes its audit entries (the only audit subject it may use)."""
    return f"{AUDIT_PREFIX}.{identity}"


def audit_identity(subject: str) -> str | None:
    """The identity an audit subject names (``gw.audit.by.<identity>``, one token), else None."""
    prefix = AUDIT_PREFIX + "."
    if not subject.startswith(prefix):
        return None
    identity = subject[len(prefix):]
    return identity if identity and "." not in identity else None


# NATS identities and JetStream's own subjects (infra/nats_permissions.py grants them per identity).
INBOX_PREFIX = "_INBOX_"
JS_API = "$JS.API"
KV_STREAM_PREFIX = "KV_"


def inbox_prefix(identity: str) -> str:
    """The reply inboxes of one NATS identity (nats-py ``inbox_prefix``): no other identity may read them."""
    return f"{INBOX_PREFIX}{identity}"


def kv_stream(bucket: str) -> str:
    """The JetStream stream behind a key-value bucket."""
    return f"{KV_STREAM_PREFIX}{bucket}"


def obj_stream(bucket: str) -> str:
    """The JetStream stream behind an object store bucket."""
    return f"{OBJ_STREAM_PREFIX}{bucket}"


def obj_subjects(bucket: str) -> str:
    """Every subject of an object store bucket (chunks ``C.<nuid>`` and metadata ``M.<name>``)."""
    return f"$O.{bucket}.>"


def obj_chunks(bucket: str, nuid: str) -> str:
    """The chunks of one object (its ``nuid`` from the object's metadata)."""
    return f"$O.{bucket}.C.{nuid}"


def kv_keys(bucket: str) -> str:
    """Every key of a bucket: publishing there writes (put, create, update, delete)."""
    return f"$KV.{bucket}.>"


def kv_key(bucket: str, key: str) -> str:
    return f"$KV.{bucket}.{key}"


def js_stream_api(action: str, stream: str) -> str:
    """A JetStream API subject about one stream, e.g. ``$JS.API.STREAM.INFO.GW_REQ``."""
    return f"{JS_API}.STREAM.{action}.{stream}"


def js_consumer_api(action: str, stream: str, consumer: str) -> str:
    """A JetStream API subject about one consumer, e.g. ``$JS.API.CONSUMER.MSG.NEXT.GW_REQ.redaction``
    (``consumer`` may be ``>`` for every consumer, ephemeral ones included)."""
    return f"{JS_API}.CONSUMER.{action}.{stream}.{consumer}"


def js_ack(stream: str, consumer: str) -> str:
    """The ack subjects (``+ACK``, ``+WPI``, ``-NAK``...) of one durable consumer's messages."""
    return f"$JS.ACK.{stream}.{consumer}.>"


def js_flow_control(stream: str) -> str:
    """The flow-control replies of push consumers on ``stream`` (key-value watchers)."""
    return f"$JS.FC.{stream}.>"


def batch_reply_subject(job_id: str, line: int) -> str:
    return f"{BATCH_REPLY_PREFIX}.{job_id}.{line}"


def batch_result_subject(job_id: str, line: int | str) -> str:
    """One line's result subject; ``line="*"`` for every line of a job."""
    return f"{BATCH_RESULT_PREFIX}.{job_id}.{line}"
