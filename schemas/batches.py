"""Batch jobs (``/v1/batches``, Anthropic's Message Batches, async single requests): the job record the
broker keeps, each line's result, and the shapes OpenAI answers with.

A job is one ``BatchJob`` in the ``GW_BATCHES`` key-value bucket (``infra/batch_store.py``), changed by
compare-and-set only. Its lines run through the whole chain like any request, each with a request id
derived from the job and the line (``line_request_id``: a rerun of a line is the same request, so the
sink records it once). Each line's answer is one ``LineResult`` in the ``GW_BATCH_RESULTS`` stream
under ``gw.batch.result.<job>.<line>``, stored once (the first answer wins), sealed like every body at
rest. Status moves as OpenAI's does::

    validating → in_progress → finalizing → completed
    validating → failed                     (the input file is not a batch for this endpoint)
    validating | in_progress → cancelling → cancelled
    in_progress → expired                   (the completion window passed; answered lines are kept)
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from schemas.errors import ErrorInfo
from schemas.wire import JSONObject, Message

BATCH_ID_PREFIX = "batch_"
ASYNC_ID_PREFIX = "async_"
COMPLETION_WINDOWS = {"24h": 24 * 3600}
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512

Status = Literal["validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling",
                 "cancelled"]
TERMINAL: frozenset[str] = frozenset({"failed", "completed", "expired", "cancelled"})
Kind = Literal["openai", "anthropic", "async"]
"""Who submitted the job: ``/v1/batches``, ``/v1/messages/batches`` or one ``x-gateway-async`` request."""

# An error file line's ``error.code`` for a line the job never ran (OpenAI's and Anthropic's words).
CANCELLED_CODE = "batch_cancelled"
EXPIRED_CODE = "batch_expired"


class BatchError(Message, frozen=True, kw_only=True):
    """Why a job failed validation (OpenAI's ``errors.data`` items)."""

    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchJob(Message, frozen=True, kw_only=True):
    """One job as the bucket keeps it. ``dispatched``: how many lines have been sent into the chain (in
    file order); ``completed``/``failed``: lines answered 2xx / otherwise, as last counted by the driver."""

    id: str
    kind: Kind = "openai"
    tenant: str
    api_key_hash: str
    api_key_id: str = ""
    endpoint: str  # "/v1/chat/completions" or "/v1/embeddings"
    input_file_id: str
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None
    status: Status = "validating"
    created_at: int
    expires_at: int
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    total: int = 0
    dispatched: int = 0
    completed: int = 0
    failed: int = 0
    errors: list[BatchError] = []
    output_file_id: str | None = None
    error_file_id: str | None = None
    cost_usd: str = "0"
    # async single requests: where the result is announced (an allow-listed URL), and the surface
    # (chat.completions, messages, embeddings) whose shape the result is given in
    callback_url: str = ""
    callback_state: Literal["", "pending", "delivered", "failed"] = ""
    surface: str = ""
    model: str = ""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def settled(self) -> bool:
        """Nothing left to do: ended, and its callback (if any) delivered or given up."""
        return self.terminal and self.callback_state != "pending"

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's batch object, field for field (the official SDK reads it unmodified)."""
        metadata = dict(self.metadata or {})
        metadata["gateway_cost_usd"] = self.cost_usd
        return {
            "id": self.id, "object": "batch", "endpoint": self.endpoint,
            "errors": ({"object": "list", "data": [_error_body(e) for e in self.errors]} if self.errors else None),
            "input_file_id": self.input_file_id, "completion_window": self.completion_window,
            "status": self.status, "output_file_id": self.output_file_id, "error_file_id": self.error_file_id,
            "created_at": self.created_at, "in_progress_at": self.in_progress_at, "expires_at": self.expires_at,
            "finalizing_at": self.finalizing_at, "completed_at": self.completed_at, "failed_at": self.failed_at,
            "expired_at": self.expired_at, "cancelling_at": self.cancelling_at, "cancelled_at": self.cancelled_at,
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
            "metadata": metadata,
        }


def _error_body(error: BatchError) -> dict[str, Any]:
    return {"code": error.code, "message": error.message, "param": error.param, "line": error.line}


class LineResult(Message, frozen=True, kw_only=True):
    """One line's answer, as the chain gave it (the body restored for the caller, like any answer)."""

    line: int  # 0-based position in the input file
    custom_id: str
    request_id: str
    status_code: int
    body: JSONObject | None = None
    error: ErrorInfo | None = None
    cost_usd: str | None = None
    finished_at: float = 0.0
    provider_ms: float = 0.0  # time spent at the provider (the rest of the line's time is the gateway's)

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status_code < 300


def new_batch_id(prefix: str = BATCH_ID_PREFIX) -> str:
    from schemas.ids import uuid7

    return prefix + uuid7().replace("-", "")


def line_request_id(job_id: str, line: int) -> str:
    """The request id of a job's line: the same for every run of it (a UUID: the ``requests`` key)."""
    return str(uuid.uuid5(_NAMESPACE, f"{job_id}/{line}"))


_NAMESPACE = uuid.UUID("6f1c1f0e-5b0e-4a8e-9d55-6a7b0c0b5e15")


def output_line(result: LineResult) -> dict[str, Any]:
    """OpenAI's output (or error) file line: ``{"id", "custom_id", "response", "error"}``."""
    line_id = "batch_req_" + result.request_id.replace("-", "")
    if result.error is not None and result.error.code in (CANCELLED_CODE, EXPIRED_CODE):
        return {"id": line_id, "custom_id": result.custom_id, "response": None,
                "error": {"code": result.error.code, "message": result.error.message}}
    body: Any = result.body if result.error is None else {"error": result.error.to_body()["error"]}
    return {"id": line_id, "custom_id": result.custom_id,
            "response": {"status_code": result.status_code, "request_id": result.request_id, "body": body},
            "error": None}


def not_run(job_id: str, line: int, custom_id: str, code: str) -> LineResult:
    """The result of a line a cancelled or expired job never ran."""
    message = ("The batch was cancelled before this request ran." if code == CANCELLED_CODE
               else "The batch's completion window passed before this request ran.")
    return LineResult(line=line, custom_id=custom_id, request_id=line_request_id(job_id, line), status_code=0,
                      error=ErrorInfo(status_code=0, type="batch_error", code=code, message=message),
                      finished_at=time.time())

