"""``gateway replay`` end to end: a real gateway (``start_gateway``, the mock provider upstream), requests
made with the official SDKs, their rows read back, then the CLI as an operator runs it (a subprocess
with the gateway's environment): dry runs against the active config, a candidate file and today's
breaker states; live replays of chat, stream, Anthropic Messages and embeddings requests, whose new
rows carry ``tags['replay_of']``; and the refusals, each saying what to do."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest
import yaml

from infra.nats_creds import seed_path
from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, start_gateway
from infra.operator.sql_client import connect_once

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("replay"), gateway_config(free_port()))
    try:
        yield gateway
    finally:
        gateway.stop()


def replay(gw: RunningGateway, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in gw.env.items() if k not in ("GATEWAY_API_KEY", "OPENAI_API_KEY", "GATEWAY_URL")}
    if key is not None:
        env["GATEWAY_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "infra.operator.cli", "replay", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def replay_json(gw: RunningGateway, *args: str, key: str | None = None) -> dict[str, Any]:
    out = replay(gw, *args, "--json", key=key)
    assert out.returncode == 0, out.stderr
    document: dict[str, Any] = json.loads(out.stdout)
    return document


def landed(gw: RunningGateway, request_id: str) -> dict[str, Any]:
    rows = gw.wait_rows(f"SELECT request_id, status_code, route_path, tags FROM requests FINAL "
                        f"WHERE request_id = '{request_id}'", lambda rows: len(rows) == 1)
    return rows[0]


def chat(gw: RunningGateway, **extra: Any) -> str:
    with openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=DEMO_KEY, max_retries=0, timeout=30) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello to Ada"}],
            extra_headers={"x-gateway-tags": '{"team": "search"}'}, **extra)
        if extra.get("stream"):
            for _ in raw.parse():
                pass
        request_id: str = raw.headers["x-gateway-request-id"]
    landed(gw, request_id)
    return request_id


@pytest.fixture(scope="module")
def chat_id(gw: RunningGateway) -> str:
    return chat(gw)


def candidate(gw: RunningGateway, tmp_path: Path, **change: Any) -> Path:
    """The running gateway's config with ``change`` applied, as a candidate file."""
    config = yaml.safe_load((gw.root / "gateway.yaml").read_text())
    config.update(change)
    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_dry_run_plans_the_same_route_under_todays_config(gw: RunningGateway, chat_id: str) -> None:
    document = replay_json(gw, chat_id, "--dry-run")
    original, planned = document["original"], document["planned"]
    assert original["route"] == planned["route"] == "mock-openai/gpt-4o-mini"
    assert original["plan"] == [step["target"] for step in planned["plan"]]
    assert planned["config_version"] == original["config_version"]
    assert planned["config_source"].startswith("file:")
    assert [step["breaker"] for step in planned["plan"]] == ["closed", "closed"]
    rows = gw.sql(f"SELECT count() AS n FROM requests WHERE tags['replay_of'] = '{chat_id}'")
    assert rows[0]["n"] == 0  # a dry run sends nothing


def test_dry_run_against_a_candidate_config(gw: RunningGateway, chat_id: str, tmp_path: Path) -> None:
    config = yaml.safe_load((gw.root / "gateway.yaml").read_text())
    targets = config["models"]["gpt-4o-mini"]["targets"]
    path = candidate(gw, tmp_path, models={**config["models"], "gpt-4o-mini": {"targets": targets[::-1]}})
    out = replay(gw, chat_id, "--dry-run", "--config", str(path))
    assert out.returncode == 0, out.stderr
    assert "original" in out.stdout and f"file:{path}" in out.stdout
    route = next(line for line in out.stdout.splitlines() if line[2:].startswith("route "))
    assert route.startswith("*")  # the route changed
    assert "mock-openai/gpt-4o-mini" in route and "mock-anthropic/claude-3-5-haiku-latest" in route

    document = replay_json(gw, chat_id, "--dry-run", "--config", str(path))
    assert document["planned"]["route"] == "mock-anthropic/claude-3-5-haiku-latest"
    assert document["original"]["route"] == "mock-openai/gpt-4o-mini"


def test_dry_run_names_the_bad_path_of_a_candidate(gw: RunningGateway, chat_id: str, tmp_path: Path) -> None:
    config = yaml.safe_load((gw.root / "gateway.yaml").read_text())
    bad = {"targets": [{"provider": "no-such-provider", "model": "x"}]}
    path = candidate(gw, tmp_path, models={**config["models"], "gpt-4o-mini": bad})
    out = replay(gw, chat_id, "--dry-run", "--config", str(path))
    assert out.returncode == 2
    assert str(path) in out.stderr and "models.gpt-4o-mini" in out.stderr and "no-such-provider" in out.stderr


def test_dry_run_of_a_model_the_candidate_drops(gw: RunningGateway, chat_id: str, tmp_path: Path) -> None:
    config = yaml.safe_load((gw.root / "gateway.yaml").read_text())
    models = {name: route for name, route in config["models"].items() if name != "gpt-4o-mini"}
    keys = [{**key, "models": ["*"]} for key in config["keys"] if key["id"] == "demo"]
    path = candidate(gw, tmp_path, models=models, keys=keys)
    planned = replay_json(gw, chat_id, "--dry-run", "--config", str(path))["planned"]
    assert planned["route"] == "" and planned["error_status"] == 404 and planned["error_code"] == "model_not_found"


def test_live_replay_through_todays_chain(gw: RunningGateway, chat_id: str) -> None:
    document = replay_json(gw, chat_id, "--key", DEMO_KEY, "--url", gw.base_url)
    original, new = document["original"], document["replay"]
    assert new["request_id"] != chat_id
    assert new["status"] == original["status"] == 200
    assert new["route"] == original["route"] == "mock-openai/gpt-4o-mini"
    assert new["tags"] == {"team": "search", "replay_of": chat_id}
    assert new["cost_usd"] is not None and new["prompt_tokens"] > 0
    row = landed(gw, new["request_id"])
    assert row["tags"]["replay_of"] == chat_id and row["status_code"] == 200


def test_live_replay_table_with_the_key_from_the_environment(gw: RunningGateway, chat_id: str) -> None:
    out = replay(gw, chat_id, key=DEMO_KEY)  # the URL from GATEWAY_PORT, the key from GATEWAY_API_KEY
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"replay of {chat_id}: chat.completions, model gpt-4o-mini")
    ids = next(line for line in lines if line[2:].startswith("request id")).split()
    new_id = ids[-1]
    assert ids[-2] == chat_id and new_id != chat_id
    for label in ("route", "status", "cost", "latency", "attempts"):
        assert any(line[2:].startswith(label) for line in lines), label
    assert landed(gw, new_id)["tags"]["replay_of"] == chat_id


def test_live_replay_of_a_stream(gw: RunningGateway) -> None:
    stream_id = chat(gw, stream=True)
    document = replay_json(gw, stream_id, key=DEMO_KEY)
    assert document["original"]["stream"] is document["replay"]["stream"] is True
    assert document["replay"]["status"] == 200 and document["replay"]["tags"]["replay_of"] == stream_id


def test_live_replay_of_anthropic_messages(gw: RunningGateway) -> None:
    with anthropic.Anthropic(base_url=gw.base_url, api_key=DEMO_KEY, max_retries=0, timeout=30) as claude:
        raw = claude.messages.with_raw_response.create(
            model="claude-3-5-haiku", max_tokens=32, system="Be brief.",
            messages=[{"role": "user", "content": "Hello"}])
        request_id = raw.headers["x-gateway-request-id"]
    landed(gw, request_id)
    document = replay_json(gw, request_id, key=DEMO_KEY)
    original, new = document["original"], document["replay"]
    assert original["endpoint"] == new["endpoint"] == "messages"
    assert new["status"] == 200 and new["route"] == original["route"] == "mock-anthropic/claude-3-5-haiku-latest"


def test_live_replay_of_embeddings(gw: RunningGateway) -> None:
    with openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=DEMO_KEY, max_retries=0, timeout=30) as client:
        raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a", "b"])
        request_id = raw.headers["x-gateway-request-id"]
    landed(gw, request_id)
    document = replay_json(gw, request_id, key=DEMO_KEY)
    assert document["replay"]["endpoint"] == "embeddings" and document["replay"]["status"] == 200


def test_refusals_say_what_to_do(gw: RunningGateway, chat_id: str, tmp_path: Path) -> None:
    unknown = replay(gw, "00000000-0000-7000-8000-000000000000", "--dry-run")
    assert unknown.returncode == 1 and "no request" in unknown.stderr and "gateway sql" in unknown.stderr

    not_an_id = replay(gw, "abc", "--dry-run")
    assert not_an_id.returncode == 2 and "not a request id" in not_an_id.stderr

    live_candidate = replay(gw, chat_id, "--config", str(gw.root / "gateway.yaml"), key=DEMO_KEY)
    assert live_candidate.returncode == 2 and "--dry-run --config FILE" in live_candidate.stderr

    no_key = replay(gw, chat_id)
    assert no_key.returncode == 2 and "GATEWAY_API_KEY" in no_key.stderr

    with openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="sk-wrong", max_retries=0, timeout=30) as client:
        raw = client.chat.completions.with_raw_response  # a refused request: recorded without a body
        with pytest.raises(openai.AuthenticationError) as refused:
            raw.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    refused_id = refused.value.response.headers["x-gateway-request-id"]
    landed(gw, refused_id)
    no_body = replay(gw, refused_id, "--dry-run")
    assert no_body.returncode == 1 and "no recorded body" in no_body.stderr

    bad_key = replay_json(gw, chat_id, key="sk-wrong")  # the chain's own refusal is a result, not a failure
    assert bad_key["replay"]["status"] == 401 and bad_key["http_status"] == 401


async def _set_breaker(gw: RunningGateway, target: str, value: dict[str, Any] | None) -> None:
    """Write a breaker state as the routing replicas share it (only their identity may write the bucket)."""
    nc = await connect_once(gw.nats_url, seed_path(gw.data_dir.resolve(), "routing"))
    try:
        kv = await nc.jetstream().key_value("GW_BREAKERS")
        key = target.replace("/", ".")
        if value is None:
            await kv.delete(key)
        else:
            await kv.put(key, orjson.dumps({**value, "target": target}))
    finally:
        await nc.close()


def test_dry_run_applies_todays_breakers(gw: RunningGateway, chat_id: str) -> None:
    target = "mock-openai/gpt-4o-mini"
    asyncio.run(_set_breaker(gw, target, {"state": "open", "since": time.time(), "opens": 1, "cooldown_s": 600}))
    try:
        planned = replay_json(gw, chat_id, "--dry-run")["planned"]
        assert planned["plan"][0] == {"target": target, "path": "targets.children.0", "breaker": "open"}
        assert planned["route"] == "mock-anthropic/claude-3-5-haiku-latest"
    finally:
        asyncio.run(_set_breaker(gw, target, None))
