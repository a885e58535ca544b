"""Delivering one webhook: the POST of an async request's result to its caller's callback URL, signed,
retried, and only ever to a URL the config allows.

The pure rules are in ``stages.webhooks`` (allow-list, signature, backoff, which answers to retry); this
module does the I/O with its own small ``httpx.AsyncClient``. Redirects are never followed (a 3xx is a
failed delivery: the new location could be outside the allow-list), the environment's proxy and netrc
settings are not read (a netrc entry would send its credentials to a callback host), and the answer's
body is never read (the status is all a delivery needs; a receiver cannot make us buffer anything).
Each attempt is signed again with its own time, so a late retry is still inside the receiver's window.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

import httpx

from schemas.config_webhooks import WebhooksConfig
from schemas.errors import ConfigInvalid
from schemas.secret_refs import variable_of
from stages.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_ID_HEADER,
    backoff_s,
    retryable,
    sign,
    url_allowed,
)

log = logging.getLogger("gateway.webhooks")

USER_AGENT = "llm-gateway-webhooks/1"
NOT_ALLOWED = "the callback URL is not allowed by webhooks.allow"
_SECONDS = re.compile(r"^\d{1,9}(?:\.\d{1,6})?$")


@dataclass(frozen=True)
class DeliveryOutcome:
    """How a delivery ended: ``attempts`` made (0: refused before any request), the last HTTP status
    (``None``: no answer) and, when not ``delivered``, what went wrong last."""

    delivered: bool
    attempts: int
    last_status: int | None
    last_error: str


@dataclass(frozen=True)
class _Attempt:
    status: int | None
    error: str
    retry_after_s: float | None = None
    final: bool = False  # nothing another attempt could change (a URL httpx refuses)


def webhook_secret(config: WebhooksConfig, environ: Mapping[str, str] = os.environ) -> bytes:
    """The signing secret ``webhooks.secret`` references, from ``environ``; ``ConfigInvalid`` naming the
    variable when it is not set (or no secret is configured)."""
    if config.secret is None:
        raise ConfigInvalid("webhooks.secret is not set: webhooks are always signed (secret: env:NAME)")
    name = variable_of(config.secret)
    value = environ.get(name)
    if not value:
        raise ConfigInvalid(f"webhooks.secret references the environment variable {name}, which is not set "
                            "in this process", code="webhook_secret_missing")
    return value.encode()


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (``"30"``, ``"1.5"``); ``None`` for an HTTP date or anything else."""
    if value is None or not _SECONDS.match(value.strip()):
        return None
    return float(value.strip())


class WebhookSender:
    """Sends webhooks for one process: ``deliver`` each, ``aclose`` at the end.

    ``clock`` (unix seconds), ``sleep`` and ``rand`` (a float in [0, 1) for the jitter) are injected so a
    test neither waits nor depends on chance; ``transport`` replaces the network (tests, another client)."""

    def __init__(self, config: WebhooksConfig, secret: bytes, *, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rand: Callable[[], float] = random.random, max_connections: int = 8) -> None:
        self._config = config
        self._secret = secret
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._client = httpx.AsyncClient(
            transport=transport, follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 5.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 2,
                                keepalive_expiry=30.0))

    async def deliver(self, url: str, payload: bytes, webhook_id: str) -> DeliveryOutcome:
        """POST ``payload`` (JSON) to ``url`` until it is answered 2xx, the answer is not worth a retry
        (``stages.webhooks.retryable``), or ``max_attempts`` are spent. A URL the allow-list does not
        admit is refused at once, without a request."""
        if not url_allowed(url, self._config.allow):
            return DeliveryOutcome(delivered=False, attempts=0, last_status=None, last_error=NOT_ALLOWED)
        attempts = self._config.max_attempts
        for number in range(1, attempts + 1):
            result = await self._attempt(url, payload, webhook_id)
            if result.status is not None and 200 <= result.status <= 299:
                return DeliveryOutcome(delivered=True, attempts=number, last_status=result.status, last_error="")
            if result.final or not retryable(result.status) or number == attempts:
                log.warning("webhook %s not delivered after %d attempt(s): %s", webhook_id, number, result.error)
                return DeliveryOutcome(delivered=False, attempts=number, last_status=result.status,
                                       last_error=result.error)
            await self._sleep(self._wait_s(number, result.retry_after_s))
        raise AssertionError("unreachable: the last attempt returns")  # max_attempts >= 1 (config)

    def _wait_s(self, failed_attempt: int, retry_after: float | None) -> float:
        """Full-jitter backoff; a ``Retry-After`` is a lower bound, itself capped at ``max_backoff_s``."""
        config = self._config
        wait = backoff_s(failed_attempt, config.first_backoff_s, config.max_backoff_s, self._rand)
        return wait if retry_after is None else max(wait, min(retry_after, config.max_backoff_s))

    async def _attempt(self, url: str, payload: bytes, webhook_id: str) -> _Attempt:
        timestamp = int(self._clock())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            WEBHOOK_ID_HEADER: webhook_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, webhook_id, payload),
        }
        try:
            async with asyncio.timeout(self._config.timeout_s):
                async with self._client.stream("POST", url, content=payload, headers=headers,
                                               follow_redirects=False) as response:
                    status = response.status_code
                    location = response.headers.get("location")
                    retry_after = retry_after_s(response.headers.get("retry-after"))
        except TimeoutError:
            return _Attempt(None, f"no answer within {self._config.timeout_s:g} s")
        except httpx.InvalidURL as exc:
            return _Attempt(None, f"invalid URL: {exc}", final=True)
        except httpx.HTTPError as exc:
            return _Attempt(None, f"{type(exc).__name__}: {exc}".rstrip(": "))
        if 300 <= status <= 399:
            return _Attempt(status, f"HTTP {status} redirect to {location!r}, not followed")
        return _Attempt(status, "" if 200 <= status <= 299 else f"HTTP {status}", retry_after)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()
