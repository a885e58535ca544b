"""The batch engine's OpenAI batch object → Anthropic ``message_batch``, its id both ways, and the list page.

Ids: ``batch_<rest>`` ↔ ``msgbatch_<rest>``. Status: validating, in_progress, finalizing → in_progress;
cancelling → canceling; completed, failed, expired, cancelled → ended. Counts follow Anthropic's
contract: every request is ``processing`` until the batch ends (the other tallies are zero until then), and
they always sum to OpenAI's ``total``. Once ended, ``completed`` → succeeded, ``failed`` → errored, and the
requests neither counted are canceled (a cancelled batch), expired (an expired batch) or errored (a
completed or failed one); so the engine's ``failed`` must not count lines it cancelled or let expire.
Times are RFC 3339 UTC strings from OpenAI's unix seconds: ``ended_at`` from the ending status's own
time (``completed_at``, ``failed_at``, ``expired_at``, ``cancelled_at``), ``cancel_initiated_at`` from
``cancelling_at``, ``expires_at`` from ``expires_at`` (else 24 h after creation, Anthropic's window);
``archived_at`` is always null (the engine archives nothing). ``results_url`` is set once ended.

The rest of this surface's batch support: ``batch_create`` (the create body → engine input lines) and
``batch_results`` (an engine output line → an Anthropic results line).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ingress.anthropic_surface.batch_create import parse_create
from ingress.anthropic_surface.batch_results import result_line
from schemas.errors import NotFound

__all__ = [
    "batch_object",
    "from_anthropic_id",
    "list_page",
    "parse_create",
    "request_counts",
    "result_line",
    "to_anthropic_id",
]

OPENAI_PREFIX = "batch_"
ANTHROPIC_PREFIX = "msgbatch_"
EXPIRY_WINDOW_S = 24 * 3600  # Anthropic's: a batch ends at the latest 24 hours after creation
_ID_REST = re.compile(r"^[A-Za-z0-9_-]+$")

_PROCESSING_STATUS = {
    "validating": "in_progress",
    "in_progress": "in_progress",
    "finalizing": "in_progress",
    "cancelling": "canceling",
    "completed": "ended",
    "failed": "ended",
    "expired": "ended",
    "cancelled": "ended",
}
# the OpenAI field holding when the batch reached each ending status
_ENDED_AT = {"completed": "completed_at", "failed": "failed_at", "expired": "expired_at", "cancelled": "cancelled_at"}
# where the requests neither completed nor failed go, by ending status
_UNFINISHED = {"completed": "errored", "failed": "errored", "expired": "expired", "cancelled": "canceled"}


def to_anthropic_id(openai_id: str) -> str:
    """``batch_abc`` → ``msgbatch_abc``; the engine's ids always start with ``batch_``."""
    rest = openai_id.removeprefix(OPENAI_PREFIX)
    if rest == openai_id or not _ID_REST.match(rest):
        raise ValueError(f"not a batch engine id: {openai_id!r}")
    return ANTHROPIC_PREFIX + rest


def from_anthropic_id(message_batch_id: str) -> str:
    """``msgbatch_abc`` → ``batch_abc``; an id this surface never issued is a 404 (``not_found_error``)."""
    rest = message_batch_id.removeprefix(ANTHROPIC_PREFIX)
    if rest == message_batch_id or not _ID_REST.match(rest):
        raise NotFound(f"No message batch with id '{message_batch_id}'.", param="message_batch_id")
    return OPENAI_PREFIX + rest


def batch_object(openai_batch: Mapping[str, Any], *, base_url: str) -> dict[str, Any]:
    """The Anthropic ``message_batch`` for an OpenAI batch object; ``base_url`` is the gateway's public
    origin (``https://gw.example.com``), under which ``results_url`` points."""
    status = str(openai_batch.get("status"))
    if status not in _PROCESSING_STATUS:
        raise ValueError(f"unknown OpenAI batch status: {status!r}")
    batch_id = to_anthropic_id(str(openai_batch.get("id")))
    created_at = _seconds(openai_batch.get("created_at"))
    if created_at is None:
        raise ValueError(f"OpenAI batch {openai_batch.get('id')!r} has no created_at")
    processing_status = _PROCESSING_STATUS[status]
    ended = processing_status == "ended"
    expires_at = _seconds(openai_batch.get("expires_at"))
    return {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": processing_status,
        "request_counts": request_counts(openai_batch.get("request_counts"), status),
        "ended_at": _rfc3339(_seconds(openai_batch.get(_ENDED_AT[status]))) if ended else None,
        "created_at": _rfc3339(created_at),
        "expires_at": _rfc3339(expires_at if expires_at is not None else created_at + EXPIRY_WINDOW_S),
        "archived_at": None,
        "cancel_initiated_at": _rfc3339(_seconds(openai_batch.get("cancelling_at"))),
        "results_url": f"{base_url.rstrip('/')}/v1/messages/batches/{batch_id}/results" if ended else None,
    }


def request_counts(openai_counts: Any, status: str) -> dict[str, int]:
    """Anthropic's tallies from OpenAI's ``{total, completed, failed}`` and the batch's OpenAI status."""
    counts = openai_counts if isinstance(openai_counts, Mapping) else {}
    total, completed, failed = (_count(counts.get(name)) for name in ("total", "completed", "failed"))
    out = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if status not in _UNFINISHED:
        out["processing"] = max(total, completed + failed)
        return out
    out["succeeded"] = completed
    out["errored"] = failed
    out[_UNFINISHED[status]] += max(total - completed - failed, 0)
    return out


def list_page(objects: Sequence[Mapping[str, Any]], *, has_more: bool, first_id: str | None,
              last_id: str | None) -> dict[str, Any]:
    """Anthropic's list body (``GET /v1/messages/batches``) for ``message_batch`` objects already made by
    ``batch_object``; ``first_id``/``last_id`` are their Anthropic ids, the cursors for ``before_id`` and
    ``after_id``."""
    return {"data": [dict(item) for item in objects], "has_more": has_more, "first_id": first_id,
            "last_id": last_id}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _rfc3339(seconds: float | None) -> str | None:
    """``2024-08-20T18:37:24Z`` (fractions kept when there are any)."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds").replace("+00:00", "Z")
