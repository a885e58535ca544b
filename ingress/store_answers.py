"""What the Files, Batch and async handlers share: a call on a broker-backed store whose failure is a
retryable 503 (``guarded``), and a handler's JSON answer or, when it raised, its error (``answer``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ingress.asgi import Send, send_error, send_json
from schemas.errors import ErrorInfo, GatewayError, ServiceUnavailable

T = TypeVar("T")


async def guarded(call: Awaitable[T], store: str) -> T:
    """A ``store`` store call (``file``, ``batch``) whose broker failure is a retryable 503."""
    try:
        return await call
    except GatewayError:
        raise
    except Exception as exc:  # noqa: BLE001 - any broker failure: a retryable 503
        raise ServiceUnavailable(f"The {store} store is unavailable ({type(exc).__name__}); retry shortly.",
                                 code=f"{store}_store_unavailable", retry_after_s=1.0) from exc


async def answer(send: Send, body: Awaitable[Any], *, status: int = 200,
                 render: Callable[[ErrorInfo], dict[str, Any]] = ErrorInfo.to_body) -> None:
    """``body``'s JSON with ``status``, or the ``GatewayError`` it raised (in ``render``'s shape)."""
    try:
        payload = await body
    except GatewayError as exc:
        await send_error(send, exc.info(), render=render)
        return
    await send_json(send, status, payload)
