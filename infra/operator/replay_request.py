"""``gateway replay``: the HTTP request that resends a logged one through today's chain, and sending it.

The request goes in by the front door (the gateway's HTTP endpoint, with an API key the operator gives),
so it meets every stage as a client's request would: today's keys, policy, guardrails, routing,
breakers and output filter. It is sent on the surface it came in on, so conditions on ``endpoint``
plan alike:

- ``chat.completions`` and ``embeddings``: the recorded body as it is (it is already OpenAI's shape);
- ``messages``: the recorded body is the canonical (OpenAI) translation ingress made of the Anthropic
  request; it is turned back into an Anthropic Messages body with the Anthropic adapter's own
  translation (``stages.providers.anthropic.build_body``, an exception to the import rules recorded in
  ``tests/unit/test_import_rules.py``), so the replay crosses the same two translations the original did.
  Parts the canonical form does not keep (``top_k``, thinking blocks) are not resent.

The replay is marked in its own row: the tag ``replay_of`` (``x-gateway-tags``, recorded in
``requests.tags``) holds the original request id, next to the original's own tags (conditions on tags
plan alike): ``SELECT * FROM requests WHERE tags['replay_of'] = '<id>'``. No migration: ``tags`` is
the column the gateway already keeps for what the caller says about a request. The original ``user``
goes in ``x-gateway-user``. Streams are resent as streams and read to the end (the figures compared
are the new row's, not the text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from infra.operator.replay_record import LoggedRequest, ReplayRefused
from stages.providers.anthropic import DEFAULT_MAX_TOKENS, DEFAULT_VERSION, build_body

REPLAY_TAG = "replay_of"
MAX_TAGS = 32
"""``ingress/metadata.py``: the most tags a request may carry."""
PATHS = {"chat.completions": "/v1/chat/completions", "embeddings": "/v1/embeddings", "messages": "/v1/messages"}


@dataclass(frozen=True)
class ReplayCall:
    """What to send: path, JSON body, headers (the API key among them)."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    stream: bool


@dataclass(frozen=True)
class ReplayAnswer:
    """What the gateway answered: its status, the new request id, and its error message if it refused."""

    status: int
    request_id: str
    error: str = ""


def replay_tags(logged: LoggedRequest) -> dict[str, str]:
    """The original's tags plus ``replay_of`` (``ReplayRefused`` when that would pass ingress's limit)."""
    tags = {**logged.tags, REPLAY_TAG: logged.request_id}
    if len(tags) > MAX_TAGS:
        raise ReplayRefused(f"request {logged.request_id} carries {len(logged.tags)} tags: with '{REPLAY_TAG}' "
                            f"it would pass the gateway's limit of {MAX_TAGS}, and an unmarked replay would be "
                            "counted as the client's own traffic; it cannot be replayed live (--dry-run can plan it)")
    return tags


def replay_call(logged: LoggedRequest, api_key: str) -> ReplayCall:
    """The request that resends ``logged`` (its endpoint must be replayable: ``check_replayable``)."""
    body = logged.body()
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json",
               "x-gateway-tags": orjson.dumps(replay_tags(logged)).decode()}
    if logged.user:
        headers["x-gateway-user"] = logged.user
    if logged.endpoint == "messages":
        body = build_body(body, logged.model_requested, DEFAULT_MAX_TOKENS, stream=logged.stream)
        headers["anthropic-version"] = DEFAULT_VERSION
    return ReplayCall(PATHS[logged.endpoint], body, headers, logged.stream)


def error_message(raw: bytes) -> str:
    """The message of an OpenAI (``{"error": {...}}``) or Anthropic (``{"type": "error", ...}``) error body."""
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode(errors="replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type") or ""
        return f"{code}: {error.get('message', '')}" if code else str(error.get("message", ""))
    return raw[:200].decode(errors="replace")


async def send_replay(base_url: str, call: ReplayCall, timeout_s: float,
                      transport: httpx.AsyncBaseTransport | None = None) -> ReplayAnswer:
    """Send ``call`` to the gateway at ``base_url``; a stream is read to its end. ``ReplayRefused`` when
    the gateway cannot be reached. ``transport``: tests' stand-in for the network."""
    url = base_url.rstrip("/") + call.path
    try:
        async with httpx.AsyncClient(timeout=timeout_s, transport=transport) as client, \
                client.stream("POST", url, content=orjson.dumps(call.body), headers=call.headers) as response:
            raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    except httpx.HTTPError as exc:
        raise ReplayRefused(f"cannot reach the gateway at {base_url} ({type(exc).__name__}: {exc}); is `gateway "
                            "up` running there? --url (or GATEWAY_URL) points replay at another") from None
    request_id = response.headers.get("x-gateway-request-id", "")
    error = "" if response.status_code < 400 else error_message(raw)
    return ReplayAnswer(response.status_code, request_id, error)
