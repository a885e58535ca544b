"""What travels along the chain: the request envelope, stream pieces and the replies to ingress.

The envelope grows as it moves: redaction fills ``vault`` and ``redactions``, policy fills the tenant
and key, routing fills ``plan``, the provider stage fills the served target, usage and ``response``.
Every stage answers an expired envelope (``deadline`` passed) with a timeout instead of working.
"""

from __future__ import annotations

import time
from typing import Literal

from schemas.errors import ErrorInfo
from schemas.events import StageEvent
from schemas.governance import Access, Admission, RateLimitStatus
from schemas.guardrails import Verdict
from schemas.routing import PlannedTarget
from schemas.wire import JSONObject, Message

SCHEMA_VERSION = 1

Endpoint = Literal["chat.completions", "messages", "embeddings"]
"""The client surface a request came in through."""


class Usage(Message, frozen=True, kw_only=True):
    prompt_tokens: int = 0  # all of them, cached ones included
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    source: Literal["provider", "estimated", "cache"] = "provider"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Envelope(Message, frozen=True, kw_only=True):
    schema_version: int = SCHEMA_VERSION
    request_id: str
    received_at: float
    deadline: float
    reply_to: str
    ack_subject: str | None = None
    delivery: int = 1
    endpoint: Endpoint = "chat.completions"
    stream: bool = False
    api_key_hash: str | None = None
    body: JSONObject
    model_requested: str
    # request metadata, for conditional and sticky routing and for analysts (see ingress/metadata.py)
    user: str = ""
    tags: dict[str, str] = {}
    headers: dict[str, str] = {}  # x-* headers; never recorded
    # a batch line (batch jobs and async requests, schemas/batches.py): its job and the line's custom_id
    batch_id: str = ""
    custom_id: str = ""
    # the caller's W3C ``traceparent`` as it came (validated where spans are made, schemas/tracing.py)
    traceparent: str = ""
    # the config version the routing stage planned with (hot reload: every stage reads the plan,
    # not its own current config, for what the plan decided)
    config_version: str = ""

    # the guardrail profile the redaction stage resolved for the request (key's, else model's, else
    # default); later stages run that profile's settings
    guardrail_profile: str = ""
    # redaction (``redacted``: the body has been through the redaction stage)
    redacted: bool = False
    vault: str | None = None
    redactions: dict[str, int] = {}
    # policy
    tenant: str | None = None
    api_key_id: str | None = None
    team: str = ""
    # governance (policy): the key's, team's and tenant's access rules merged (routing keeps to them),
    # and what the request was admitted with (its reservation, its rate-limit status)
    access: Access | None = None
    admission: Admission | None = None
    # routing
    plan: list[PlannedTarget] = []
    # targets the tenant policy ruled out (target id -> why, e.g. "region!=eu", "provider not allowed")
    skipped_targets: dict[str, str] = {}
    experiment: str = ""
    variant: str = ""
    # provider call
    provider: str | None = None
    model_served: str | None = None
    route_path: str = ""  # the tree path of the target that answered
    attempts: int = 0
    provider_ms: float = 0.0
    ttfb_ms: float | None = None
    # output filter: what the gateway added to the caller's first streamed token (ttfb_added_ms)
    ttfb_added_ms: float | None = None
    usage: Usage | None = None
    cost_usd: str | None = None
    response: JSONObject | None = None
    # response cache (stages/cache.py): the caller's directive (ingress), the plan (policy: status miss,
    # refresh or bypass, the key, how long an entry may be reused, the largest stored; 0: never stored), a
    # hit (provider stage: its age and what the call it saved cost)
    cache_directive: str = ""
    cache: str = ""
    cache_key: str = ""
    cache_ttl_s: int = 0
    cache_max_bytes: int = 0
    cache_age_s: float | None = None
    cache_saved_usd: str | None = None
    # the semantic cache (stages/semantic_cache.py): the scope an entry is compared in, the least similarity
    # (policy), the question's vector (provider stage, for the output filter to index), a hit's similarity
    cache_scope: str = ""
    cache_similarity_min: float = 0.0
    cache_vector: str = ""
    cache_similarity: float | None = None
    # output filter
    output_findings: dict[str, int] = {}
    # every guardrail verdict so far, redaction's and the output filter's included (audit)
    verdicts: list[Verdict] = []
    # time spent inside each stage, for the overhead breakdown
    stage_ms: dict[str, float] = {}
    # each stage's event, recorded with the request when it ends (see schemas/events.py)
    events: list[StageEvent] = []

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.deadline

    def remaining_s(self, now: float | None = None) -> float:
        return self.deadline - (now if now is not None else time.time())


class StreamPiece(Message, frozen=True, kw_only=True):
    """One message of a streamed answer, provider stage → filter replica, in ``seq`` order.

    ``chunk`` is an OpenAI ``chat.completion.chunk`` dict. The last piece has ``final`` (the envelope
    as the provider stage left it: usage, served target, timings) or ``error`` (the stream broke).
    """

    request_id: str
    seq: int
    chunk: JSONObject | None = None
    final: Envelope | None = None
    error: ErrorInfo | None = None


class Reply(Message, frozen=True, kw_only=True):
    """What ingress receives on its reply subject.

    kind ``response``: the whole answer in ``body`` with ``status``; ``error``: a typed error;
    ``chunk``: one SSE data payload of a stream, in ``seq`` order; ``end``: the stream is over (its
    ``seq`` is the number of chunks before it). ``response``, ``error`` and ``end`` arrive as requests:
    ingress confirms them (``schemas.control.ReplyAck``).
    """

    kind: Literal["response", "error", "chunk", "end"]
    request_id: str
    # Which run of the chain answers (JetStream delivery count): ingress keeps to the first run it
    # hears from, so a chain that ran twice never interleaves two streams.
    delivery: int = 1
    seq: int = 0
    status: int = 200
    body: JSONObject | None = None
    error: ErrorInfo | None = None
    provider_ms: float = 0.0
    ttfb_ms: float | None = None
    # streams: the subject of the filter replica relaying the stream (where ingress asks for a resend)
    src: str = ""
    # the rate limits the request met, for the answer's x-ratelimit-* headers
    ratelimit: RateLimitStatus | None = None
    # what the request cost (batch jobs total it)
    cost_usd: str | None = None
    # the response cache: hit, miss, bypass ('' when off), a hit's age and, semantic, its similarity
    cache: str = ""
    cache_age_s: float | None = None
    cache_similarity: float | None = None
