"""The semantic cache through the whole gateway: a reworded question is answered from the cache (with its
similarity in a header and the requests row), a one-word edit that asks something else is not, nor a
question under another system prompt or of another tenant; the index holds no PII; a purge empties it."""

from __future__ import annotations

import asyncio
import random
import string
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, LIMITED_KEY, RunningGateway, gateway_config, mock_requests, start_gateway
from schemas import subjects
from tests.support.nats_creds import bucket_values

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    config = gateway_config(free_port(), cache={"mode": "semantic", "ttl_s": 600, "similarity": 0.8})
    gateway = start_gateway(tmp_path_factory.mktemp("semantic"), config)
    try:
        yield gateway
    finally:
        gateway.stop()


def ask(gw: RunningGateway, content: str, *, key: str = DEMO_KEY, system: str | None = None) -> httpx.Response:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    response = httpx.post(f"{gw.base_url}/v1/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {key}"},
                          json={"model": MODEL, "messages": [*messages, {"role": "user", "content": content}]})
    assert response.status_code == 200, response.text
    return response


def tag(first: str) -> str:
    """A marker of letters only, the same in a question and its rewording."""
    return first + "".join(random.choices(string.ascii_lowercase, k=11))


def calls_with(gw: RunningGateway, marker: str) -> int:
    return sum(1 for r in mock_requests(gw) if marker in str(r["body"]))


def records(gw: RunningGateway) -> list[bytes]:
    """Every value in the semantic index bucket."""
    return bucket_values(gw.nats_url, gw.data_dir, subjects.BUCKET_CACHE_INDEX)


def indexed(gw: RunningGateway, marker: str) -> None:
    """Wait until the question about ``marker`` is in the index (written just after the answer is sent),
    then a moment for the provider replica's watch to take it."""
    for _ in range(100):
        if any(marker.lower().encode() in value for value in records(gw)):
            asyncio.run(asyncio.sleep(0.2))
            return
        asyncio.run(asyncio.sleep(0.05))
    raise AssertionError(f"no index record for {marker}")


def text(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


def test_a_reworded_question_is_answered_from_the_cache(gw: RunningGateway) -> None:
    marker = tag("m")
    first = ask(gw, f"{marker}: What is the tallest mountain in Africa?")
    assert first.headers["x-gateway-cache"] == "miss"
    indexed(gw, marker)
    again = ask(gw, f"{marker}: tallest mountain in africa, please")
    assert again.headers["x-gateway-cache"] == "hit", again.headers
    assert 0.8 <= float(again.headers["x-gateway-cache-similarity"]) <= 1.0
    assert text(again) == text(first)  # the first question's answer
    assert calls_with(gw, marker) == 1
    rows = gw.wait_rows(f"SELECT cache, cache_similarity FROM requests WHERE request_id = "
                        f"'{again.headers['x-gateway-request-id']}'", lambda r: len(r) == 1)
    assert rows[0]["cache"] == "hit" and 0.8 <= rows[0]["cache_similarity"] <= 1.0


def test_a_one_word_edit_is_another_question(gw: RunningGateway) -> None:
    marker = tag("n")
    ask(gw, f"{marker}: Convert 100 degrees Fahrenheit to Celsius.")
    indexed(gw, marker)
    for other in (f"{marker}: Convert 100 degrees Celsius to Fahrenheit.",
                  f"{marker}: Convert 10 degrees Fahrenheit to Celsius."):
        assert ask(gw, other).headers["x-gateway-cache"] == "miss"
    assert calls_with(gw, marker) == 3


def test_the_system_prompt_and_the_tenant_must_be_the_same(gw: RunningGateway) -> None:
    marker = tag("s")
    ask(gw, f"{marker}: How do I reset my password?", system="You are the help desk of Acme.")
    indexed(gw, marker)
    reworded = f"{marker}: how can I reset my password"
    assert ask(gw, reworded, system="You are a pirate.").headers["x-gateway-cache"] == "miss"
    assert ask(gw, reworded, system="You are the help desk of Acme.", key=LIMITED_KEY
               ).headers["x-gateway-cache"] == "miss"
    assert ask(gw, reworded, system="You are the help desk of Acme.").headers["x-gateway-cache"] == "hit"


def test_the_index_holds_no_pii_and_a_purge_empties_it(gw: RunningGateway) -> None:
    marker = tag("p")
    ask(gw, f"{marker}: please write to dana.white@example.com about the invoice")
    indexed(gw, marker)
    values = b"".join(records(gw))
    assert b"<EMAIL_ADDRESS_1>" in values and b"dana.white" not in values
    reworded = ask(gw, f"{marker}: write to erin.black@example.org about the invoice please")
    assert reworded.headers["x-gateway-cache"] == "hit"
    assert "erin.black@example.org" in text(reworded)  # restored with this request's value
    done = subprocess.run([sys.executable, "-m", "infra.operator.cli", "cache", "purge", "--tenant", "acme",
                           "--json"], capture_output=True, text=True, timeout=60, env=gw.env)
    assert done.returncode == 0, done.stderr
    assert not any(marker.lower().encode() in v for v in records(gw))
    asyncio.run(asyncio.sleep(0.3))
    assert ask(gw, f"{marker}: write to erin.black@example.org about the invoice please"
               ).headers["x-gateway-cache"] == "miss"
