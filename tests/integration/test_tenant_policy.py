"""Tenant policy through the whole chain (issue 13): the official ``openai`` SDK against a gateway of its
own (real NATS, embedded ClickHouse, the mock provider behind two providers tagged ``region: us`` and
``region: eu``).

- A key requiring ``region=eu`` is served only by the eu provider, though the us one comes first in the
  route; the row's ``policy_skips`` names the us target and why, ``route.planned`` counts it.
- A team or tenant rule from the config's ``governance`` section applies to its keys.
- A key whose rules no target meets gets 403 ``policy_denied`` in the OpenAI error shape, recorded.
- A key with a ``max_tokens`` cap: above it (or without one) a 400 naming the field; within it, served.
- A key without rules routes as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from infra.nats_server import free_port
from infra.operator.launcher import RunningGateway, gateway_config, start_gateway

pytestmark = pytest.mark.integration

MODEL = "residency"
KEYS = {"eu": "sk-tp-eu", "apac": "sk-tp-apac", "capped": "sk-tp-capped", "free": "sk-tp-free",
        "hipaa": "sk-tp-hipaa"}


def key(name: str, tenant: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"tp-{name}", "key_sha256": hashlib.sha256(KEYS[name].encode()).hexdigest(), "tenant": tenant,
            **extra}


def policy_config(mock_port: int) -> dict[str, Any]:
    base = gateway_config(mock_port)
    mock = f"http://127.0.0.1:{mock_port}/v1"
    return gateway_config(
        mock_port,
        providers={**base["providers"],
                   "mock-us": {"type": "openai", "base_url": mock, "tags": {"region": "us", "compliance": "soc2"}},
                   "mock-eu": {"type": "openai", "base_url": mock,
                               "tags": {"region": "eu", "compliance": ["hipaa", "soc2"]}}},
        models={**base["models"],
                MODEL: {"targets": [{"provider": "mock-us", "model": "us-model"},
                                    {"provider": "mock-eu", "model": "eu-model"}]}},
        keys=[key("eu", "euco", access={"require_tags": {"region": "eu"}}),
              key("apac", "apacco", access={"require_tags": {"region": "apac"}}),
              key("capped", "acme", access={"max_tokens": 64}),
              key("free", "acme"),
              key("hipaa", "clinic", team="records")],
        governance={"tenants": {"clinic": {"access": {"require_tags": {"compliance": "hipaa"}}}},
                    "teams": {"records": {"access": {"providers": ["mock-eu", "mock-us"], "max_tokens": 1000}}}},
    )


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("tenant_policy"), policy_config(free_port()))
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def clients(gw: RunningGateway) -> Iterator[dict[str, openai.OpenAI]]:
    made = {name: openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=raw, max_retries=0, timeout=30)
            for name, raw in KEYS.items()}
    try:
        yield made
    finally:
        for client in made.values():
            client.close()


def ask(client: openai.OpenAI, **kw: Any) -> tuple[str, str]:
    """(the model that served, request id)."""
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "where am I served?"}], **kw)
    return raw.parse().model, raw.headers["x-gateway-request-id"]


def row(gw: RunningGateway, request_id: str) -> dict[str, Any]:
    rows = gw.wait_rows(
        "SELECT tenant, api_key_id, provider, model_served, status_code, error_type, error_code, policy_skips "
        f"FROM requests WHERE request_id = '{request_id}'", lambda r: len(r) == 1)
    return rows[0]


def test_a_key_requiring_eu_is_served_only_by_the_eu_provider(
        gw: RunningGateway, clients: dict[str, openai.OpenAI]) -> None:
    for _ in range(3):
        served, request_id = ask(clients["eu"], max_tokens=32)
        assert served == "eu-model"
    record = row(gw, request_id)
    assert (record["tenant"], record["provider"], record["status_code"]) == ("euco", "mock-eu", 200)
    assert record["policy_skips"] == {"mock-us/us-model": "region=us, needs eu"}
    planned = gw.wait_rows(f"SELECT attrs FROM events WHERE request_id = '{request_id}' AND type = 'route.planned'",
                           lambda r: len(r) == 1)
    attrs = json.loads(planned[0]["attrs"])
    assert attrs["policy_skipped"] == 1 and attrs["targets"] == ["mock-eu/eu-model"]


def test_streams_keep_to_the_policy_too(clients: dict[str, openai.OpenAI]) -> None:
    chunks = list(clients["eu"].chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "stream it"}], stream=True))
    assert {c.model for c in chunks if c.model} == {"eu-model"}


def test_a_tenant_rule_from_the_governance_section_applies_to_its_keys(
        gw: RunningGateway, clients: dict[str, openai.OpenAI]) -> None:
    served, request_id = ask(clients["hipaa"], max_tokens=100)
    assert served == "eu-model"
    assert row(gw, request_id)["policy_skips"] == {"mock-us/us-model": "compliance=soc2, needs hipaa"}
    with pytest.raises(openai.BadRequestError) as raised:  # and the team's cap
        ask(clients["hipaa"], max_tokens=1001)
    assert raised.value.code == "max_tokens_exceeded"


def test_no_qualifying_target_is_a_403_policy_denied(gw: RunningGateway) -> None:
    response = httpx.post(f"{gw.base_url}/v1/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {KEYS['apac']}"},
                          json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("permission_error", "policy_denied", "model")
    assert "requires region=apac" in error["message"]
    assert "mock-us/us-model (region=us, needs apac)" in error["message"]
    assert "mock-eu/eu-model (region=eu, needs apac)" in error["message"]
    record = row(gw, response.headers["x-gateway-request-id"])
    assert (record["status_code"], record["error_type"], record["error_code"]) == (403, "permission_error",
                                                                                   "policy_denied")
    assert (record["tenant"], record["api_key_id"], record["provider"]) == ("apacco", "tp-apac", "")
    assert record["policy_skips"] == {"mock-us/us-model": "region=us, needs apac",
                                      "mock-eu/eu-model": "region=eu, needs apac"}


def test_the_sdk_sees_a_permission_error(clients: dict[str, openai.OpenAI]) -> None:
    with pytest.raises(openai.PermissionDeniedError) as raised:
        ask(clients["apac"])
    assert raised.value.status_code == 403 and raised.value.code == "policy_denied"


def test_max_tokens_above_the_cap_is_refused_never_clamped(
        gw: RunningGateway, clients: dict[str, openai.OpenAI]) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        ask(clients["capped"], max_tokens=65)
    error = raised.value
    assert (error.status_code, error.code, error.param) == (400, "max_tokens_exceeded", "max_tokens")
    assert "cap of 64" in error.message
    with pytest.raises(openai.BadRequestError) as raised:
        ask(clients["capped"], max_completion_tokens=4096)
    assert (raised.value.code, raised.value.param) == ("max_tokens_exceeded", "max_completion_tokens")
    with pytest.raises(openai.BadRequestError) as raised:
        ask(clients["capped"])
    assert (raised.value.code, raised.value.param) == ("max_tokens_required", "max_tokens")
    request_id = raised.value.response.headers["x-gateway-request-id"]
    record = row(gw, request_id)
    assert (record["status_code"], record["error_code"], record["tenant"]) == (400, "max_tokens_required", "acme")
    served, _ = ask(clients["capped"], max_tokens=64)
    assert served == "us-model"  # no routing rule: the route's first target


def test_a_key_without_rules_routes_as_before(gw: RunningGateway, clients: dict[str, openai.OpenAI]) -> None:
    served, request_id = ask(clients["free"])
    assert served == "us-model"
    assert row(gw, request_id)["policy_skips"] == {}
