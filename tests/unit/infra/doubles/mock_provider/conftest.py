"""Fixtures for the mock provider tests: a fresh app per test and an in-process HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from infra.doubles.mock_provider.server import MockProvider

SSEEvent = tuple[str | None, str]


def parse_sse(text: str) -> list[SSEEvent]:
    """(event name, data) pairs of an SSE body; accepts LF and CRLF line ends."""
    events: list[SSEEvent] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        events.append((name, "\n".join(data)))
    return events


@pytest.fixture
def mock_app() -> MockProvider:
    return MockProvider()


@pytest.fixture
async def client(mock_app: MockProvider) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=mock_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as c:
        yield c


@pytest.fixture
async def lenient_client(mock_app: MockProvider) -> AsyncIterator[httpx.AsyncClient]:
    """A client that returns partial bodies when the app drops a stream (cut_after) instead of raising."""
    transport = httpx.ASGITransport(app=mock_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as c:
        yield c


@pytest.fixture
def sse() -> Callable[[str], list[SSEEvent]]:
    return parse_sse
