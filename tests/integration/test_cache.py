"""The response cache through the whole gateway: a hit restores the current request's values, the bucket
holds no PII, tenants never share an entry, hits stream in both surfaces, the directives and headers, and
the requests rows."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, LIMITED_KEY, RunningGateway, gateway_config, mock_requests, start_gateway
from schemas import subjects
from tests.support.nats_creds import bucket_values

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    config = gateway_config(free_port(), cache={"mode": "exact", "ttl_s": 600})
    gateway = start_gateway(tmp_path_factory.mktemp("cache"), config)
    try:
        yield gateway
    finally:
        gateway.stop()


def ask(gw: RunningGateway, content: str, *, key: str = DEMO_KEY, headers: dict[str, str] | None = None,
        **body: Any) -> httpx.Response:
    response = httpx.post(f"{gw.base_url}/v1/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {key}", **(headers or {})},
                          json={"model": MODEL, "messages": [{"role": "user", "content": content}], **body})
    assert response.status_code == 200, response.text
    return response


def calls_with(gw: RunningGateway, marker: str) -> int:
    return sum(1 for r in mock_requests(gw) if marker in str(r["body"]))


def entries(gw: RunningGateway) -> list[bytes]:
    """Every value in the cache bucket."""
    return bucket_values(gw.nats_url, gw.data_dir, subjects.BUCKET_CACHE)


def stored(gw: RunningGateway, marker: str) -> None:
    """Wait until the answer about ``marker`` is in the bucket (it is written just after the answer is sent)."""
    for _ in range(100):
        if any(marker.encode() in value for value in entries(gw)):
            return
        asyncio.run(asyncio.sleep(0.05))
    raise AssertionError(f"no cache entry for {marker}")


def text(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


def test_a_hit_restores_the_current_requests_values_and_stores_none(gw: RunningGateway) -> None:
    marker = f"m{uuid.uuid4().hex[:12]}"
    first = ask(gw, f"{marker}: my address is alice.smith@example.com")
    assert text(first) == f"Echo: {marker}: my address is alice.smith@example.com"
    assert first.headers["x-gateway-cache"] == "miss" and "age" not in first.headers
    stored(gw, marker)
    second = ask(gw, f"{marker}: my address is bob.jones@example.org")  # the same once redacted
    assert text(second) == f"Echo: {marker}: my address is bob.jones@example.org"
    assert second.headers["x-gateway-cache"] == "hit" and int(second.headers["age"]) >= 0
    assert calls_with(gw, marker) == 1  # the provider was called once
    values = b"".join(entries(gw))
    assert marker.encode() in values and b"<EMAIL_ADDRESS_1>" in values
    assert b"alice.smith" not in values and b"bob.jones" not in values
    rows = gw.wait_rows(
        "SELECT request_id, cache, cache_saved_usd, cost_usd, usage_source FROM requests WHERE request_id IN "
        f"('{first.headers['x-gateway-request-id']}', '{second.headers['x-gateway-request-id']}')",
        lambda r: len(r) == 2)
    by_id = {r["request_id"]: r for r in rows}
    miss, hit = by_id[first.headers["x-gateway-request-id"]], by_id[second.headers["x-gateway-request-id"]]
    assert miss["cache"] == "miss" and miss["cache_saved_usd"] is None and float(miss["cost_usd"]) > 0
    assert hit["cache"] == "hit" and float(hit["cost_usd"]) == 0 and hit["usage_source"] == "cache"
    assert float(hit["cache_saved_usd"]) == float(miss["cost_usd"])


def test_tenants_never_share_an_entry(gw: RunningGateway) -> None:
    marker = f"t{uuid.uuid4().hex[:12]}"
    assert ask(gw, marker).headers["x-gateway-cache"] == "miss"
    stored(gw, marker)
    other = ask(gw, marker, key=LIMITED_KEY)  # another tenant, the same request
    assert other.headers["x-gateway-cache"] == "miss" and calls_with(gw, marker) == 2
    assert ask(gw, marker).headers["x-gateway-cache"] == "hit" and calls_with(gw, marker) == 2


def test_directives(gw: RunningGateway) -> None:
    marker = f"d{uuid.uuid4().hex[:12]}"
    assert ask(gw, marker, headers={"x-gateway-cache": "no-store"}).headers["x-gateway-cache"] == "miss"
    assert ask(gw, marker, headers={"cache-control": "no-cache"}).headers["x-gateway-cache"] == "bypass"
    assert not any(marker.encode() in v for v in entries(gw))  # neither stored it
    assert ask(gw, marker).headers["x-gateway-cache"] == "miss"
    stored(gw, marker)
    assert ask(gw, marker).headers["x-gateway-cache"] == "hit"
    assert ask(gw, marker, headers={"x-gateway-cache": "no-cache"}).headers["x-gateway-cache"] == "bypass"
    assert ask(gw, marker, headers={"x-gateway-cache": "refresh"}).headers["x-gateway-cache"] == "miss"
    assert calls_with(gw, marker) == 5  # every request but the hit
    # what shapes the answer is in the key; the user field is not
    assert ask(gw, marker, user="someone-else").headers["x-gateway-cache"] == "hit"
    assert ask(gw, marker, temperature=0.1).headers["x-gateway-cache"] == "miss"


def test_a_hit_streams_in_pieces_and_a_streamed_miss_is_stored(gw: RunningGateway) -> None:
    marker = f"s{uuid.uuid4().hex[:12]}"
    content = f"{marker} please explain the quarterly numbers to carol@example.com in a few words"

    def stream(address: str) -> tuple[list[str], httpx.Headers]:
        body = {"model": MODEL, "stream": True, "messages": [
            {"role": "user", "content": content.replace("carol@example.com", address)}]}
        with httpx.stream("POST", f"{gw.base_url}/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {DEMO_KEY}"}) as response:
            assert response.status_code == 200
            chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
            return [c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")], response.headers

    pieces, headers = stream("carol@example.com")
    assert headers["x-gateway-cache"] == "miss"
    assert "".join(pieces) == f"Echo: {content}"
    stored(gw, marker)
    pieces, headers = stream("dave@example.net")
    assert headers["x-gateway-cache"] == "hit" and "age" in headers
    assert "".join(pieces) == "Echo: " + content.replace("carol@example.com", "dave@example.net")
    assert len([p for p in pieces if p]) >= 5  # in pieces, like a stream
    assert calls_with(gw, marker) == 1
    # a whole request is answered from the streamed one's entry too
    whole = ask(gw, content.replace("carol@example.com", "erin@example.org"))
    assert whole.headers["x-gateway-cache"] == "hit" and "erin@example.org" in text(whole)


def test_anthropic_callers_stream_hits_in_their_own_format(gw: RunningGateway) -> None:
    marker = f"a{uuid.uuid4().hex[:12]}"
    with anthropic.Anthropic(base_url=gw.base_url, api_key=DEMO_KEY, max_retries=0, timeout=30) as claude:
        def stream() -> tuple[str, str]:
            with claude.messages.with_streaming_response.create(
                    model=MODEL, max_tokens=64, stream=True,
                    messages=[{"role": "user", "content": f"{marker} say hello"}]) as raw:
                events = list(raw.parse())
                said = "".join(e.delta.text for e in events if e.type == "content_block_delta"
                               and e.delta.type == "text_delta")
                assert events[0].type == "message_start" and events[-1].type == "message_stop"
                return said, raw.headers["x-gateway-cache"]
        first, status = stream()
        assert status == "miss" and marker in first
        stored(gw, marker)
        again, status = stream()
        assert status == "hit" and again == first and calls_with(gw, marker) == 1


def cli_json(gw: RunningGateway, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "infra.operator.cli", *args, "--json"], env=gw.env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def cache_cli(gw: RunningGateway, *args: str) -> dict[str, Any]:
    return cli_json(gw, "cache", *args)


def test_a_keys_own_setting_wins(gw: RunningGateway) -> None:
    off = cli_json(gw, "keys", "create", "--tenant", "acme", "--cache-mode", "off")["secret"]
    marker = f"k{uuid.uuid4().hex[:12]}"
    for _ in range(2):  # the config's top level says exact; this key says off
        assert "x-gateway-cache" not in ask(gw, marker, key=off).headers
    assert calls_with(gw, marker) == 2


def test_stats_and_purge_by_tenant(gw: RunningGateway) -> None:
    marker = f"p{uuid.uuid4().hex[:12]}"
    ask(gw, marker)
    ask(gw, marker, key=LIMITED_KEY)
    stored(gw, marker)
    shown = cache_cli(gw, "stats")
    tenants = {row["tenant"] for row in shown["by_tenant_alias"]}
    assert {"acme", "globex"} <= tenants and shown["entries"] >= 2 and shown["bytes"] > 0
    assert any(row["alias"] == MODEL for row in shown["by_tenant_alias"])
    purged = cache_cli(gw, "purge", "--tenant", "globex")
    assert purged["purged"] >= 1
    assert ask(gw, marker, key=LIMITED_KEY).headers["x-gateway-cache"] == "miss"  # globex's entry is gone
    assert ask(gw, marker).headers["x-gateway-cache"] == "hit"  # acme's is not
    assert cache_cli(gw, "purge") == {"purged": "all"}
    assert ask(gw, marker).headers["x-gateway-cache"] == "miss"


def test_metrics_count_hits_and_savings(gw: RunningGateway) -> None:
    marker = f"x{uuid.uuid4().hex[:12]}"
    ask(gw, marker)
    stored(gw, marker)
    ask(gw, marker)
    for _ in range(100):  # the sink counts each request once it is written (its batch window)
        text = httpx.get(f"{gw.base_url}/metrics", timeout=10).text
        hits = [line for line in text.splitlines()
                if line.startswith("gateway_cache_requests_total{") and 'status="hit"' in line]
        if hits and any(line.startswith("gateway_cache_saved_usd_total{") for line in text.splitlines()):
            break
        asyncio.run(asyncio.sleep(0.2))
    else:
        raise AssertionError("no cache hit counted in /metrics")
    # the dashboard's cache panels chart families this /metrics shows (test_metrics.py checks the rest)
    dashboard = json.loads((Path(__file__).parents[2] / "infra" / "grafana" / "gateway-dashboard.json").read_text())
    used = {re.sub(r"_(total|count|sum|bucket)$", "", name) for panel in dashboard["panels"]
            for target in panel["targets"] for name in re.findall(r"\bgateway_cache_[a-z_]+", target["expr"])}
    shown = {family.name for family in text_string_to_metric_families(text)}
    assert used and used <= shown, sorted(used - shown)
