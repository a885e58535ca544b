"""The OpenAI Batch API (``/v1/batches``): create, retrieve, list, cancel. A job is written to the
``GW_BATCHES`` bucket (``infra/batch_store.py``) and driven by the batch worker (``workers/batch.py``);
ingress only checks what is asked, writes, and reads back. Every job belongs to the caller's key's
tenant: another tenant's id answers 404 like an unknown one. Errors are in the OpenAI shape.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson

from infra.batch_store import BatchStore
from infra.file_store import FileStore
from ingress.asgi import Receive, Scope, Send, read_body
from ingress.intake import authenticate
from ingress.operation_records import recorded, remember_key
from ingress.store_answers import answer, guarded
from schemas.batch_input import BATCH_URLS
from schemas.batches import (
    BATCH_ID_PREFIX,
    COMPLETION_WINDOWS,
    MAX_METADATA_KEY,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE,
    BatchJob,
    Kind,
    new_batch_id,
)
from schemas.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from schemas.events import RequestCompleted
from schemas.governance import KeyDirectory, VirtualKey
from schemas.wire import replace

_BATCH_ID = re.compile(rf"^(?:{BATCH_ID_PREFIX}|async_)[0-9a-f]{{32}}$")
LIST_DEFAULT_LIMIT = 20
LIST_MAX_LIMIT = 100
MAX_CREATE_BODY = 64 * 1024


def metadata_of(value: Any) -> dict[str, str] | None:
    """OpenAI's metadata: up to 16 string pairs, keys up to 64 characters, values up to 512."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be an object of strings.", param="metadata", code="invalid_metadata")
    if len(value) > MAX_METADATA_PAIRS:
        raise InvalidRequest(f"metadata holds at most {MAX_METADATA_PAIRS} pairs.", param="metadata",
                             code="invalid_metadata")
    for k, v in value.items():
        if not isinstance(v, str) or len(k) > MAX_METADATA_KEY or len(v) > MAX_METADATA_VALUE:
            raise InvalidRequest(f"metadata.{k}: keys are strings of up to {MAX_METADATA_KEY} characters and "
                                 f"values strings of up to {MAX_METADATA_VALUE}.", param=f"metadata.{k}",
                                 code="invalid_metadata")
    return dict(value)


def batch_page(jobs: list[BatchJob], query: dict[str, str]) -> dict[str, Any]:
    """A page of the tenant's jobs, newest first: ``after`` an id to start past, ``limit`` 1..100."""
    raw_limit = query.get("limit", str(LIST_DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIST_MAX_LIMIT:
        raise InvalidRequest(f"limit: must be an integer from 1 to {LIST_MAX_LIMIT}.", param="limit",
                             code="invalid_limit")
    after = query.get("after")
    if after is not None:
        ids = [j.id for j in jobs]
        jobs = jobs[ids.index(after) + 1:] if after in ids else []
    limit = int(raw_limit)
    page = [j.to_openai() for j in jobs[:limit]]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(jobs) > limit}


def cancelled(job: BatchJob, now: int) -> BatchJob | None:
    """The job asked to stop: ``cancelling`` (its driver ends it ``cancelled``); None if it already is."""
    if job.status in ("cancelling", "cancelled"):
        return None
    if job.terminal or job.status == "finalizing":
        raise Conflict(f"Batch {job.id} is {job.status}; only a validating or in-progress batch can be cancelled.",
                       param="batch_id", code="batch_not_cancellable")
    return replace(job, status="cancelling", cancelling_at=now)


class BatchesApi:
    """The handlers; ``store``/``files`` are the stores once ingress is connected (``None`` before: 503)."""

    def __init__(self, js: Callable[[], Any], key: bytes, keys: Callable[[], KeyDirectory],
                 body_timeout_s: float, record: Callable[[RequestCompleted], None] | None = None) -> None:
        self._js = js
        self._key = key
        self._keys = keys
        self.body_timeout_s = body_timeout_s
        self._record = record

    def jobs(self) -> BatchStore:
        js = self._js()
        if js is None:
            raise _broker_down()
        return BatchStore(js)

    def files(self) -> FileStore:
        js = self._js()
        if js is None:
            raise _broker_down()
        return FileStore(js, self._key)

    def key_of(self, scope: Scope) -> VirtualKey:
        key_hash, key = authenticate(scope, self._keys())
        remember_key(scope, key)
        scope["gateway.key_hash"] = key_hash
        return key

    async def create(self, scope: Scope, receive: Receive, send: Send) -> None:
        await recorded("batches.create", scope, send, lambda s: answer(s, self._create(scope, receive)),
                       self._record)

    async def retrieve(self, scope: Scope, send: Send, batch_id: str) -> None:
        await recorded("batches.retrieve", scope, send, lambda s: answer(s, _openai(self.owned(scope, batch_id))),
                       self._record)

    async def list(self, scope: Scope, send: Send) -> None:
        await recorded("batches.list", scope, send, lambda s: answer(s, self._list(scope)), self._record)

    async def cancel(self, scope: Scope, send: Send, batch_id: str) -> None:
        await recorded("batches.cancel", scope, send, lambda s: answer(s, _openai(self.cancel_job(scope, batch_id))),
                       self._record)

    async def _create(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        key = self.key_of(scope)
        raw = await read_body(scope, receive, MAX_CREATE_BODY, self.body_timeout_s)
        body = _json_object(raw)
        endpoint = body.get("endpoint")
        if endpoint not in BATCH_URLS:
            raise InvalidRequest(f"endpoint: {endpoint!r} is not supported; use one of {', '.join(BATCH_URLS)}.",
                                 param="endpoint", code="unsupported_endpoint")
        window = body.get("completion_window")
        if window not in COMPLETION_WINDOWS:
            raise InvalidRequest(f"completion_window: {window!r} is not supported; use \"24h\".",
                                 param="completion_window", code="invalid_completion_window")
        file_id = body.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise InvalidRequest("input_file_id is required.", param="input_file_id", code="missing_input_file")
        metadata = metadata_of(body.get("metadata"))
        file = await guarded(self.files().get(key.tenant, file_id), "file")
        if file is None:
            raise NotFound(f"No such File object: {file_id}", param="input_file_id", code="file_not_found")
        if file.purpose != "batch":
            raise InvalidRequest(f"File {file_id} was uploaded with purpose {file.purpose!r}; a batch's input "
                                 "file needs purpose \"batch\".", param="input_file_id", code="invalid_file_purpose")
        job = await self.submit(scope, key, kind="openai", endpoint=str(endpoint), input_file_id=file_id,
                                metadata=metadata, window=str(window))
        return job.to_openai()

    async def submit(self, scope: Scope, key: VirtualKey, *, kind: Kind, endpoint: str, input_file_id: str,
                     metadata: dict[str, str] | None = None, window: str = "24h", callback_url: str = "",
                     surface: str = "", model: str = "", job_id: str | None = None) -> BatchJob:
        """Write a new job (``validating``): the batch worker takes it from there."""
        now = int(time.time())
        job = BatchJob(id=job_id or new_batch_id(), kind=kind, tenant=key.tenant,
                       api_key_hash=str(scope["gateway.key_hash"]), api_key_id=key.id, endpoint=endpoint,
                       input_file_id=input_file_id, completion_window=window, metadata=metadata, created_at=now,
                       expires_at=now + COMPLETION_WINDOWS[window], callback_url=callback_url,
                       callback_state="pending" if callback_url else "", surface=surface, model=model)
        await guarded(self.jobs().create(job), "batch")
        return job

    async def owned(self, scope: Scope, batch_id: str, kinds: tuple[Kind, ...] = ("openai",)) -> BatchJob:
        key = self.key_of(scope)
        job = None
        if _BATCH_ID.match(batch_id):
            job = await guarded(self.jobs().owned(key.tenant, batch_id, kinds), "batch")
        if job is None:
            raise NotFound(f"No such Batch object: {batch_id}", param="batch_id", code="batch_not_found")
        return job

    async def cancel_job(self, scope: Scope, batch_id: str, kinds: tuple[Kind, ...] = ("openai",)) -> BatchJob:
        job = await self.owned(scope, batch_id, kinds)
        now = int(time.time())
        changed = await guarded(self.jobs().change(job.id, lambda j: cancelled(j, now)), "batch")
        if changed is None:
            raise NotFound(f"No such Batch object: {batch_id}", param="batch_id", code="batch_not_found")
        return changed

    async def _list(self, scope: Scope) -> dict[str, Any]:
        key = self.key_of(scope)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        batch_page([], query)  # the query's errors before any I/O
        return batch_page(await guarded(self.jobs().of_tenant(key.tenant, ("openai",)), "batch"), query)


async def _openai(job: Awaitable[BatchJob]) -> dict[str, Any]:
    return (await job).to_openai()


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.", code="invalid_json")
    return body


def _broker_down() -> ServiceUnavailable:
    return ServiceUnavailable("The gateway's message broker is unreachable; retry shortly.",
                              code="broker_unavailable", retry_after_s=1.0)
