"""Anthropic's Message Batches (``/v1/messages/batches``) on the same batch engine as ``/v1/batches``.

Create turns the requests into the engine's input lines (``anthropic_surface/batch_create.py``: each
``params`` validated like ``POST /v1/messages`` and made canonical), stores them as the job's input file
and writes the job (kind ``anthropic``); the batch worker drives it like any other. Retrieve, list and
cancel answer Anthropic's ``message_batch``; results stream the output and error files as Anthropic's
JSONL results. Errors are in Anthropic's shape.
"""

from __future__ import annotations

import io
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ingress.anthropic_surface.batches import (
    batch_object,
    from_anthropic_id,
    list_page,
    parse_create,
    result_line,
    to_anthropic_id,
)
from ingress.asgi import Receive, Scope, Send, header, read_body, send_error
from ingress.batches_api import BatchesApi
from ingress.files_api import new_file_id
from ingress.intake import check_anthropic_version
from ingress.operation_records import recorded
from ingress.store_answers import answer, guarded
from ingress.surfaces import ANTHROPIC
from schemas.batches import BatchJob, Kind
from schemas.errors import GatewayError, InvalidRequest
from schemas.files import FileObject, StoredFile

LIST_DEFAULT_LIMIT = 20
LIST_MAX_LIMIT = 1000
RESULTS_HEADERS = [(b"content-type", b"application/x-jsonl")]
KINDS: tuple[Kind, ...] = ("anthropic",)


def base_url(scope: Scope) -> str:
    """The origin the caller reached us at (``results_url`` points under it)."""
    host = header(scope, b"host") or "127.0.0.1"
    scheme = scope.get("scheme") or "http"
    return f"{scheme}://{host}"


class AnthropicBatchesApi:
    def __init__(self, batches: BatchesApi, max_file_bytes: int) -> None:
        self.batches = batches
        self.max_file_bytes = max_file_bytes

    async def create(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._recorded("create", scope, send, self._message_batch(scope, self._create(scope, receive)))

    async def retrieve(self, scope: Scope, send: Send, batch_id: str) -> None:
        await self._recorded("retrieve", scope, send, self._message_batch(scope, self._owned(scope, batch_id)))

    async def list(self, scope: Scope, send: Send) -> None:
        await self._recorded("list", scope, send, self._list(scope))

    async def cancel(self, scope: Scope, send: Send, batch_id: str) -> None:
        await self._recorded("cancel", scope, send, self._message_batch(scope, self._cancel(scope, batch_id)))

    async def results(self, scope: Scope, send: Send, batch_id: str) -> None:
        await recorded("messages.batches.results", scope, send, lambda s: self._results(scope, s, batch_id),
                       self.batches._record)

    async def delete(self, scope: Scope, send: Send, batch_id: str) -> None:
        await self._recorded("delete", scope, send, self._delete(scope, batch_id))

    async def _recorded(self, operation: str, scope: Scope, send: Send, body: Awaitable[dict[str, Any]]) -> None:
        """Answer ``body`` (Anthropic's error shape when it raises), recorded as ``messages.batches.<op>``."""
        await recorded(f"messages.batches.{operation}", scope, send,
                       lambda s: answer(s, body, render=ANTHROPIC.error_body), self.batches._record)

    async def _create(self, scope: Scope, receive: Receive) -> BatchJob:
        key = self.batches.key_of(scope)
        check_anthropic_version(scope)
        raw = await read_body(scope, receive, self.max_file_bytes, self.batches.body_timeout_s)
        lines = parse_create(raw)
        data = b"".join(orjson.dumps(line.model_dump()) + b"\n" for line in lines)
        stored = StoredFile(tenant=key.tenant, file=FileObject(
            id=new_file_id(), bytes=len(data), created_at=int(time.time()), filename="message_batch_requests.jsonl",
            purpose="batch"))
        await guarded(self.batches.files().put(stored, io.BytesIO(data)), "file")
        return await self.batches.submit(scope, key, kind="anthropic", endpoint="/v1/chat/completions",
                                         input_file_id=stored.file.id, surface="messages",
                                         job_id="batch_" + stored.file.id.removeprefix("file-"))

    @staticmethod
    async def _message_batch(scope: Scope, job: Awaitable[BatchJob]) -> dict[str, Any]:
        return batch_object((await job).to_openai(), base_url=base_url(scope))

    async def _owned(self, scope: Scope, batch_id: str) -> BatchJob:
        self.batches.key_of(scope)  # the key first: an unknown id without a valid key is a 401, not a 404
        return await self.batches.owned(scope, from_anthropic_id(batch_id), KINDS)

    async def _cancel(self, scope: Scope, batch_id: str) -> BatchJob:
        self.batches.key_of(scope)
        return await self.batches.cancel_job(scope, from_anthropic_id(batch_id), KINDS)

    async def _list(self, scope: Scope) -> dict[str, Any]:
        """Newest first; ``after_id`` pages to older batches, ``before_id`` to newer ones."""
        key = self.batches.key_of(scope)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        raw_limit = query.get("limit", str(LIST_DEFAULT_LIMIT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIST_MAX_LIMIT:
            raise InvalidRequest(f"limit: must be an integer from 1 to {LIST_MAX_LIMIT}.", param="limit")
        limit = int(raw_limit)
        jobs = await guarded(self.batches.jobs().of_tenant(key.tenant, KINDS), "batch")
        ids = [to_anthropic_id(j.id) for j in jobs]
        if "after_id" in query:
            start = ids.index(query["after_id"]) + 1 if query["after_id"] in ids else len(ids)
            chosen = jobs[start:start + limit]
            has_more = start + limit < len(jobs)
        elif "before_id" in query:
            end = ids.index(query["before_id"]) if query["before_id"] in ids else 0
            chosen = jobs[max(0, end - limit):end]
            has_more = end - limit > 0
        else:
            chosen, has_more = jobs[:limit], len(jobs) > limit
        url = base_url(scope)
        objects = [batch_object(j.to_openai(), base_url=url) for j in chosen]
        return list_page(objects, has_more=has_more, first_id=objects[0]["id"] if objects else None,
                         last_id=objects[-1]["id"] if objects else None)

    async def _results(self, scope: Scope, send: Send, batch_id: str) -> None:
        try:
            job = await self._owned(scope, batch_id)
            if not job.terminal:
                raise InvalidRequest(f"Message batch {batch_id} has not ended yet (it is {job.status}); its results "
                                     "are available once processing_status is ended.", code="batch_not_ended")
            files = self.batches.files()
            models: dict[str, str] = {}
            async for raw in files.lines(job.tenant, job.input_file_id):
                line = orjson.loads(raw)
                models[str(line.get("custom_id"))] = str((line.get("body") or {}).get("model") or "")
        except GatewayError as exc:
            await send_error(send, exc.info(), render=ANTHROPIC.error_body)
            return
        await send({"type": "http.response.start", "status": 200, "headers": RESULTS_HEADERS})
        for file_id in (job.output_file_id, job.error_file_id):
            async for raw in files.lines(job.tenant, file_id):
                line = orjson.loads(raw)
                out = result_line(line, model=models.get(str(line.get("custom_id")), ""))
                await send({"type": "http.response.body", "body": orjson.dumps(out) + b"\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _delete(self, scope: Scope, batch_id: str) -> dict[str, Any]:
        job = await self._owned(scope, batch_id)
        if not job.terminal:
            raise InvalidRequest(f"Message batch {batch_id} is still {job.status}; cancel it and wait until it "
                                 "has ended before deleting it.", code="batch_not_ended")
        await guarded(self.batches.jobs().delete(job.id), "batch")
        files = self.batches.files()
        for file_id in (job.input_file_id, job.output_file_id, job.error_file_id):
            if file_id:
                await guarded(files.delete(job.tenant, file_id), "file")
        return {"id": batch_id, "type": "message_batch_deleted"}
