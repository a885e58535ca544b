"""Virtual keys through the whole running gateway: created over the admin API or the CLI, used at once
through every stage, refused by every ingress within a second of revocation, rotated with a grace
period, expired, `/v1/models` filtered, a GW_KEYS key's guardrail profile applied.

Its own gateway (module scope), with the admin API enabled through the environment and a guardrail
profile that no config key names (so only a KV key can select it)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, mock_requests, start_gateway

pytestmark = pytest.mark.integration

ADMIN = "sk-admin-integration"
ADMIN_AUTH = {"authorization": f"Bearer {ADMIN}"}
EMAIL = "ops.governance@example.com"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    mock_port = free_port()
    # "clear": emails are not redacted on the way in, so the provider sees them (only a KV key names it)
    config = gateway_config(mock_port, guardrail_profiles={"clear": {"redaction": {"entities": ["PHONE_NUMBER"]}}})
    gateway = start_gateway(tmp_path_factory.mktemp("governance"), config=config,
                            extra_env={"GATEWAY_ADMIN_KEY_SHA256": hashlib.sha256(ADMIN.encode()).hexdigest()})
    try:
        yield gateway
    finally:
        gateway.stop()


def create(gw: RunningGateway, **fields: Any) -> dict[str, Any]:
    response = httpx.post(f"{gw.base_url}/admin/v1/keys", headers=ADMIN_AUTH, json={"tenant": "acme", **fields},
                          timeout=10)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def chat(gw: RunningGateway, secret: str, text: str = "hello") -> str:
    with openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=secret, max_retries=0, timeout=30) as client:
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
    return answer.choices[0].message.content or ""


def models(gw: RunningGateway, secret: str) -> httpx.Response:
    # a new connection each time: the kernel spreads them over both ingress processes
    return httpx.get(f"{gw.base_url}/v1/models", headers={"authorization": f"Bearer {secret}"}, timeout=5)


def refused_code(response: httpx.Response) -> str | None:
    if response.status_code != 401:
        return None
    code: str = response.json()["error"]["code"]
    return code


def wait_refused(gw: RunningGateway, secret: str, code: str, timeout_s: float) -> float:
    """Seconds until refusals with ``code`` began everywhere: the start of the first run of 20 requests
    in a row (new connections, over both ingress processes) that were all refused."""
    began = time.monotonic()
    while True:
        run_started = time.monotonic()
        if all(refused_code(models(gw, secret)) == code for _ in range(20)):
            return run_started - began
        if time.monotonic() - began > timeout_s:
            raise AssertionError(f"{code} not seen everywhere within {timeout_s}s")
        time.sleep(0.02)


def test_a_key_created_over_the_admin_api_works_through_the_whole_gateway(gw: RunningGateway) -> None:
    key = create(gw, team="ml", models=["gpt-4o-mini", "claude-3-5-haiku"], name="integration")
    assert chat(gw, key["secret"])
    rows = gw.wait_rows(f"SELECT tenant, api_key_id FROM requests WHERE api_key_id = '{key['id']}'",
                        lambda rows: len(rows) >= 1)
    assert rows[0]["tenant"] == "acme"


def test_models_lists_only_what_the_key_may_use(gw: RunningGateway) -> None:
    key = create(gw, models=["gpt-4o-mini", "claude-3-5-haiku"])
    listed = models(gw, key["secret"]).json()
    assert [m["id"] for m in listed["data"]] == ["claude-3-5-haiku", "gpt-4o-mini"]
    anthropic = httpx.get(f"{gw.base_url}/v1/models", timeout=5,
                          headers={"x-api-key": key["secret"], "anthropic-version": "2023-06-01"}).json()
    assert [m["id"] for m in anthropic["data"]] == ["claude-3-5-haiku", "gpt-4o-mini"]
    everything = [m["id"] for m in models(gw, DEMO_KEY).json()["data"]]  # a "*" key: every alias
    assert len(everything) > 2 and "nova-lite" in everything
    assert httpx.get(f"{gw.base_url}/v1/models/nova-lite", headers={"authorization": f"Bearer {key['secret']}"},
                     timeout=5).status_code == 404


def test_revocation_is_refused_by_every_ingress_within_a_second(gw: RunningGateway) -> None:
    key = create(gw)
    assert models(gw, key["secret"]).status_code == 200
    revoked = httpx.delete(f"{gw.base_url}/admin/v1/keys/{key['id']}", headers=ADMIN_AUTH, timeout=10)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert wait_refused(gw, key["secret"], "key_revoked", timeout_s=5.0) < 1.0
    with pytest.raises(openai.AuthenticationError) as raised:
        chat(gw, key["secret"])
    assert raised.value.code == "key_revoked"


def test_rotation_keeps_the_old_secret_through_its_grace(gw: RunningGateway) -> None:
    key = create(gw)
    rotated = httpx.post(f"{gw.base_url}/admin/v1/keys/{key['id']}/rotate", headers=ADMIN_AUTH,
                         json={"grace": "3s"}, timeout=10)
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    time.sleep(0.3)  # the watch pushes the change to every process
    assert chat(gw, key["secret"]) and chat(gw, new)
    assert wait_refused(gw, key["secret"], "key_rotated", timeout_s=6.0) < 6.0
    assert chat(gw, new)


def test_an_expired_key_is_refused(gw: RunningGateway) -> None:
    key = create(gw, expires="2s")
    assert models(gw, key["secret"]).status_code == 200
    wait_refused(gw, key["secret"], "key_expired", timeout_s=5.0)


def test_a_kv_keys_guardrail_profile_applies(gw: RunningGateway) -> None:
    plain, clear = create(gw), create(gw, guardrail_profile="clear")
    chat(gw, plain["secret"], f"write to {EMAIL} first")
    chat(gw, clear["secret"], f"mail {EMAIL} now")
    sent = [str(r["body"]) for r in mock_requests(gw) if EMAIL in str(r["body"]) or "first" in str(r["body"])]
    assert any(f"mail {EMAIL} now" in body for body in sent)  # the "clear" profile: the email reached it
    assert not any(f"write to {EMAIL}" in body for body in sent)  # the default profile redacted it


def test_admin_refusals_and_the_openapi_document(gw: RunningGateway) -> None:
    wrong = httpx.get(f"{gw.base_url}/admin/v1/keys", headers={"authorization": f"Bearer {DEMO_KEY}"}, timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_admin_key"
    bad = httpx.post(f"{gw.base_url}/admin/v1/keys", headers=ADMIN_AUTH, json={"tenant": "acme", "rpm": -1},
                     timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rpm"
    doc = httpx.get(f"{gw.base_url}/admin/v1/openapi.json", timeout=5).json()
    assert "/admin/v1/keys/{id}/rotate" in doc["paths"]


def cli(gw: RunningGateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "infra.operator.cli", *args], env=gw.env, capture_output=True,
                          text=True, timeout=60)


def cli_json(gw: RunningGateway, *args: str) -> Any:
    out = cli(gw, *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_cli_with_json(gw: RunningGateway) -> None:
    created = cli_json(gw, "keys", "create", "--tenant", "initech", "--team", "ops", "--models", "gpt-4o-mini",
                       "--rpm", "120", "--budget-usd", "5", "--budget-period", "day", "--tag", "env=ci")
    key_id, secret = created["id"], created["secret"]
    assert secret.startswith("sk-gw-") and created["limits"]["rpm"] == 120
    assert chat(gw, secret)
    listed = cli_json(gw, "keys", "list", "--tenant", "initech")
    assert [k["id"] for k in listed] == [key_id] and secret not in json.dumps(listed)
    shown = cli_json(gw, "keys", "show", key_id)
    assert shown["usage"]["remaining_usd"] is not None and shown["tags"] == {"env": "ci"}
    updated = cli_json(gw, "keys", "update", key_id, "--clear", "rpm", "--name", "renamed")
    assert updated["limits"]["rpm"] is None and updated["name"] == "renamed"
    rotated = cli_json(gw, "keys", "rotate", key_id, "--grace", "10m")
    assert rotated["secret"] != secret and len(rotated["secrets"]) == 2
    assert cli_json(gw, "keys", "revoke", key_id)["status"] == "revoked"
    budget = cli_json(gw, "budgets", "set", "--team", "ops", "--usd", "50", "--period", "month", "--tpm", "9000")
    assert budget["limits"]["budget_usd"] == "50" and budget["limits"]["tpm"] == 9000
    assert cli_json(gw, "budgets", "show", "--team", "ops")["configured"] is True

    table = cli(gw, "keys", "list", "--tenant", "initech")
    assert table.returncode == 0 and key_id in table.stdout and "revoked" in table.stdout
    missing = cli(gw, "keys", "show", "nope")
    assert missing.returncode == 1 and "gateway keys list" in missing.stderr
    invalid = cli(gw, "keys", "create", "--tenant", "acme", "--guardrail-profile", "nope")
    assert invalid.returncode == 2 and "guardrail_profiles" in invalid.stderr
