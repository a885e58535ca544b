"""A lean HTTP/1.1 transport for `httpx.AsyncClient` (asyncio + httptools; no httpcore, anyio or h11)."""

from __future__ import annotations

from infra.http_transport._transport import FastAsyncTransport, default_ssl_context

__all__ = ["FastAsyncTransport", "default_ssl_context"]
