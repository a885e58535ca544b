"""The mock provider served by `run()` (uvicorn + uvloop + httptools) in a subprocess, over real TCP."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

pytestmark = pytest.mark.server  # starts the mock provider as a process

ROOT = Path(__file__).resolve().parents[5]  # the checkout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from infra.doubles.mock_provider import run; run(port={port})"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"{url}/_mock/health", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mock provider did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()  # by PID: SIGTERM to the child we started
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
    assert "StreamCut" not in stderr and "Traceback" not in stderr, stderr


async def test_streaming_over_tcp(base_url: str) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello over tcp [[mock chunk_delay_ms=1]]"}],
        "stream": True,
    }
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            pieces = [chunk async for chunk in r.aiter_text()]
    text = "".join(pieces)
    assert text.endswith("data: [DONE]\n\n")
    payloads = [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    deltas = [orjson.loads(p)["choices"][0]["delta"] for p in payloads[:-1]]
    assert [d.get("content") for d in deltas] == ["", "Echo: he", "llo over", " tcp", None]


async def test_cut_after_drops_the_connection(base_url: str) -> None:
    body = {
        "model": "claude",
        "max_tokens": 16,
        "stream": True,
        "messages": [{"role": "user", "content": "hello world [[mock cut_after=1]]"}],
    }
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/v1/messages", json=body)


async def test_timeout_does_not_block_other_requests(base_url: str) -> None:
    hang = {"contents": [{"parts": [{"text": "[[mock timeout]]"}]}]}
    fine = {"contents": [{"parts": [{"text": "ok"}]}]}
    url = "/v1beta/models/g:generateContent"
    async with httpx.AsyncClient(base_url=base_url, timeout=0.5) as client:
        hanging = asyncio.create_task(client.post(url, json=hang))
        await asyncio.sleep(0.05)
        r = await client.post(url, json=fine)
        assert r.status_code == 200
        assert not hanging.done()
        with pytest.raises(httpx.ReadTimeout):
            await hanging


async def test_a_paced_stream_ends_when_its_client_goes_away(base_url: str) -> None:
    # As a real provider stops generating for a client that left (a deadline cut, a cancelled call):
    # the stream below would take 30 s to send in full.
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "word " * 100 + "[[mock chunk_delay_ms=300 chunk_chars=4]]"}],
    }
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            async for _ in r.aiter_lines():
                break
            assert (await client.get("/_mock/health")).json()["streaming"] == 1
        # the client hung up: the stream ends at its next pause, not in 30 s
        for _ in range(100):
            if (await client.get("/_mock/health")).json()["streaming"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await client.get("/_mock/health")).json()["streaming"] == 0
