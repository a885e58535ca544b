"""Async single requests: ``x-gateway-async: true`` on ``POST /v1/chat/completions``, ``/v1/messages`` or
``/v1/embeddings`` answers ``202`` with a job id at once; ``GET /v1/async/{id}`` answers the result (in the
surface's own shape, with the status the request would have had) or, while it runs, its status (202).

An async request is a batch job of one line (kind ``async``), so it rides the batch engine: durable on
the broker, in the batch lane, recorded like any request. With ``x-gateway-callback-url`` (which must
match the config's ``webhooks.allow``), the batch worker also POSTs the result there, signed
(``stages/webhooks.py``), retried with backoff.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import orjson

from infra.file_store import FileStore
from ingress.asgi import Scope, Send, header, send_error, send_json
from ingress.batches_api import BatchesApi
from ingress.files_api import new_file_id
from ingress.operation_records import recorded
from ingress.store_answers import guarded
from ingress.surfaces import ANTHROPIC, Surface
from schemas.batches import ASYNC_ID_PREFIX, BatchJob, Kind, line_request_id
from schemas.config_webhooks import WebhooksConfig, url_allowed
from schemas.envelope import Envelope
from schemas.errors import ErrorInfo, GatewayError, InvalidRequest
from schemas.files import FileObject, StoredFile

ASYNC_HEADER = b"x-gateway-async"
CALLBACK_HEADER = b"x-gateway-callback-url"
KINDS: tuple[Kind, ...] = ("async",)
_RUNNING = {"validating": "queued", "in_progress": "in_progress", "finalizing": "in_progress",
            "cancelling": "cancelling"}


def wants_async(scope: Scope) -> bool:
    value = header(scope, ASYNC_HEADER)
    if value is None:
        return False
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise InvalidRequest(f"{ASYNC_HEADER.decode()} must be true or false, got {value!r}.",
                         param=ASYNC_HEADER.decode(), code="invalid_header")


def status_document(job: BatchJob) -> dict[str, Any]:
    return {"id": job.id, "object": "async.request", "status": _RUNNING.get(job.status, job.status),
            "created_at": job.created_at, "request_id": line_request_id(job.id, 0), "url": f"/v1/async/{job.id}"}


def rendered(job: BatchJob, line: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The status and body a finished async request answers with, in its surface's shape."""
    response = line.get("response")
    if not isinstance(response, dict):  # never ran: cancelled or expired
        return 200, {**status_document(job), "status": job.status, "error": line.get("error")}
    status = int(response.get("status_code") or 500)
    raw_body = response.get("body")
    body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
    if job.surface != "messages":
        return status, body
    if 200 <= status < 300:
        return status, ANTHROPIC.response_body(body, job.model)
    raw_error = body.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    info = ErrorInfo(status_code=status, type=str(error.get("type") or "api_error"), code=error.get("code"),
                     message=str(error.get("message") or ""))
    return status, ANTHROPIC.error_body(info)


async def result_line(files: FileStore, job: BatchJob) -> dict[str, Any] | None:
    """The finished job's one output (or error) line: an async request's result."""
    for file_id in (job.output_file_id, job.error_file_id):
        async for raw in files.lines(job.tenant, file_id):
            value = orjson.loads(raw)
            return value if isinstance(value, dict) else None
    return None


class AsyncApi:
    def __init__(self, batches: BatchesApi, webhooks: Callable[[], WebhooksConfig]) -> None:
        self.batches = batches
        self._webhooks = webhooks

    async def submit(self, scope: Scope, send: Send, surface: Surface, envelope: Envelope) -> None:
        """Queue ``envelope`` (read and validated by the surface) as a job of one line: 202."""
        try:
            key = self.batches.key_of(scope)
            if envelope.stream:
                raise InvalidRequest("x-gateway-async cannot be combined with stream: true; the result is fetched "
                                     "from /v1/async/{id} or sent to the callback URL.", param="stream",
                                     code="async_stream_unsupported")
            callback = header(scope, CALLBACK_HEADER) or ""
            if callback and not url_allowed(callback, self._webhooks().allow):
                raise InvalidRequest(f"The callback URL {callback!r} is not allowed: add a matching pattern to the "
                                     "config's webhooks.allow.", param=CALLBACK_HEADER.decode(),
                                     code="callback_url_not_allowed")
            url = "/v1/embeddings" if surface.endpoint == "embeddings" else "/v1/chat/completions"
            line = {"custom_id": "async", "method": "POST", "url": url, "body": envelope.body}
            data = orjson.dumps(line) + b"\n"
            file_id = new_file_id()
            job_id = ASYNC_ID_PREFIX + file_id.removeprefix("file-")
            stored = StoredFile(tenant=key.tenant, file=FileObject(
                id=file_id, bytes=len(data), created_at=int(time.time()), filename=f"{job_id}.jsonl", purpose="batch"))
            await guarded(self.batches.files().put(stored, io.BytesIO(data)), "file")
            job = await self.batches.submit(scope, key, kind="async", endpoint=url, input_file_id=file_id,
                                            callback_url=callback, surface=surface.endpoint,
                                            model=envelope.model_requested, job_id=job_id)
        except GatewayError as exc:
            await send_error(send, exc.info(), render=surface.error_body)
            return
        document = status_document(job)
        await send_json(send, 202, document, [(b"location", document["url"].encode()),
                                              (b"x-gateway-request-id", document["request_id"].encode())])

    async def get(self, scope: Scope, send: Send, job_id: str) -> None:
        await recorded("async.retrieve", scope, send, lambda s: self._get(scope, s, job_id), self.batches._record)

    async def _get(self, scope: Scope, send: Send, job_id: str) -> None:
        try:
            job = await self.batches.owned(scope, job_id, KINDS)
            line = await guarded(result_line(self.batches.files(), job), "file") if job.terminal else None
        except GatewayError as exc:
            await send_error(send, exc.info())
            return
        headers = [(b"x-gateway-async-status", job.status.encode())]
        if not job.terminal or line is None:
            await send_json(send, 202 if not job.terminal else 200, status_document(job), headers)
            return
        status, body = rendered(job, line)
        await send_json(send, status, body, headers)
