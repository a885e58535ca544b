"""The admin API over a real JetStream (ASGI, no server): admin auth refusals, every operation, errors in
the OpenAI shape with the right status and ``param``."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingress.admin_api import AdminApi, _checked
from ingress.config_view import ConfigView
from schemas.audit_actor import authenticated
from schemas.config import GatewayConfig, hash_api_key
from schemas.errors import NotFound
from tests.support.jetstream import JetStreamServer, audit_published, jetstream_server

pytestmark = pytest.mark.server

ADMIN = "sk-admin-test"
CONFIG = GatewayConfig.model_validate({
    "keys": [{"id": "demo", "key_sha256": hash_api_key("sk-demo"), "tenant": "acme"}],
    "admin": {"key_sha256": hashlib.sha256(ADMIN.encode()).hexdigest()},
    "guardrail_profiles": {"strict": {}},
})
AUTH = {"authorization": f"Bearer {ADMIN}"}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with jetstream_server(tmp_path / "nats") as srv:
        yield srv


def client_for(app: AdminApi) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


@pytest.fixture
async def client(server: JetStreamServer) -> AsyncIterator[httpx.AsyncClient]:
    view = ConfigView.of(CONFIG)
    async with client_for(AdminApi(lambda: server.js, lambda: view)) as c:
        yield c


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    return body


async def test_admin_auth_refusals(client: httpx.AsyncClient) -> None:
    missing = await client.get("/admin/v1/keys")
    assert missing.status_code == 401 and error(missing)["code"] == "missing_admin_key"
    wrong = await client.get("/admin/v1/keys", headers={"authorization": "Bearer sk-demo"})
    assert wrong.status_code == 401 and error(wrong)["code"] == "invalid_admin_key"
    assert (await client.get("/admin/v1/keys", headers=AUTH)).status_code == 200


async def test_the_admin_api_is_off_without_a_key(server: JetStreamServer) -> None:
    view = ConfigView.of(GatewayConfig())
    async with client_for(AdminApi(lambda: server.js, lambda: view)) as c:
        off = await c.get("/admin/v1/keys", headers=AUTH)
    assert off.status_code == 404 and error(off)["code"] == "admin_api_disabled"
    assert "GATEWAY_ADMIN_KEY_SHA256" in error(off)["message"]
    sha = hashlib.sha256(ADMIN.encode()).hexdigest()  # the environment's key enables it
    async with client_for(AdminApi(lambda: server.js, lambda: view, sha)) as c:
        assert (await c.get("/admin/v1/keys", headers=AUTH)).status_code == 200


async def test_key_lifecycle(client: httpx.AsyncClient) -> None:
    created = await client.post("/admin/v1/keys", headers=AUTH, json={
        "id": "k1", "tenant": "acme", "team": "ml", "budget_usd": "5", "budget_period": "day", "rpm": 60,
        "expires": "30d", "guardrail_profile": "strict", "tags": {"env": "prod"}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("sk-gw-") and body["id"] == "k1" and body["status"] == "active"
    assert "sha256" not in created.text

    listed = (await client.get("/admin/v1/keys?tenant=acme", headers=AUTH)).json()
    assert [k["id"] for k in listed["data"]] == ["k1"] and body["secret"] not in str(listed)
    assert (await client.get("/admin/v1/keys?team=web", headers=AUTH)).json()["data"] == []

    shown = (await client.get("/admin/v1/keys/k1", headers=AUTH)).json()
    assert shown["limits"]["rpm"] == 60 and shown["usage"]["remaining_usd"] == "5.0"

    patched = await client.patch("/admin/v1/keys/k1", headers=AUTH, json={"rpm": None, "name": "n",
                                                                          "revision": shown["revision"]})
    assert patched.status_code == 200 and patched.json()["limits"]["rpm"] is None
    stale = await client.patch("/admin/v1/keys/k1", headers=AUTH, json={"name": "m", "revision": shown["revision"]})
    assert stale.status_code == 409 and error(stale)["param"] == "revision"

    rotated = await client.post("/admin/v1/keys/k1/rotate", headers=AUTH, json={"grace": "10m"})
    assert rotated.status_code == 200 and rotated.json()["secret"] != body["secret"]
    assert len(rotated.json()["secrets"]) == 2

    revoked = await client.delete("/admin/v1/keys/k1", headers=AUTH)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    again = await client.delete("/admin/v1/keys/k1", headers=AUTH)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


@pytest.mark.parametrize(("body", "param", "status"), [
    ({"tenant": "acme", "rpm": 0}, "rpm", 400),
    ({"tenant": "acme", "expires": "soon"}, "expires", 400),
    ({"tenant": "acme", "guardrail_profile": "nope"}, "guardrail_profile", 400),
    ({"tenant": "acme", "id": "demo"}, "id", 409),
    ({"team": "x"}, "tenant", 400),
])
async def test_create_refusals_name_the_field(client: httpx.AsyncClient, body: dict[str, Any], param: str,
                                              status: int) -> None:
    response = await client.post("/admin/v1/keys", headers=AUTH, json=body)
    assert response.status_code == status and error(response)["param"] == param


async def test_not_found_bad_json_and_methods(client: httpx.AsyncClient) -> None:
    missing = await client.get("/admin/v1/keys/nope", headers=AUTH)
    assert missing.status_code == 404 and error(missing)["code"] == "key_not_found"
    bad = await client.post("/admin/v1/keys", headers=AUTH, content=b"{not json")
    assert bad.status_code == 400 and error(bad)["code"] == "invalid_json"
    assert (await client.put("/admin/v1/keys/x", headers=AUTH, json={})).status_code == 405
    assert (await client.get("/admin/v1/nothing", headers=AUTH)).status_code == 404


async def test_budgets(client: httpx.AsyncClient) -> None:
    put = await client.put("/admin/v1/budgets/team/ml", headers=AUTH,
                           json={"usd": "50", "period": "month", "tpm": 1000, "alert_at": 0.8})
    assert put.status_code == 200, put.text
    assert put.json()["limits"]["budget_usd"] == "50" and put.json()["configured"] is True
    shown = (await client.get("/admin/v1/budgets/team/ml", headers=AUTH)).json()
    assert shown["limits"]["tpm"] == 1000 and shown["usage"]["remaining_usd"] == "50.0"
    unknown = await client.get("/admin/v1/budgets/org/ml", headers=AUTH)
    assert unknown.status_code == 404 and error(unknown)["param"] == "kind"
    bad = await client.put("/admin/v1/budgets/tenant/acme", headers=AUTH, json={"usd": "-3"})
    assert bad.status_code == 400 and error(bad)["param"] == "usd"


async def test_changes_over_the_api_are_audited_as_the_admin_key_via_ingress(server: JetStreamServer) -> None:
    view = ConfigView.of(CONFIG)
    async with client_for(AdminApi(lambda: server.js, lambda: view, identity="ingress")) as client:
        created = await client.post("/admin/v1/keys", headers=AUTH, json={"id": "k9", "tenant": "acme"})
        assert created.status_code == 201, created.text
        put = await client.put("/admin/v1/budgets/tenant/acme", headers=AUTH, json={"rpm": 5})
        assert put.status_code == 200, put.text
    published = await audit_published(server.js)
    fingerprint = hashlib.sha256(ADMIN.encode()).hexdigest()[:12]  # names the key, never reveals it
    assert [(s, e.actor, e.kind, e.action, e.subject) for s, e in published] == [
        ("gw.audit.by.ingress", f"admin-api:{fingerprint}", "key", "created", "key.k9"),
        ("gw.audit.by.ingress", f"admin-api:{fingerprint}", "budget", "set", "tenant.acme")]
    assert [authenticated(s, e).actor for s, e in published] == [f"admin-api:{fingerprint} via nats:ingress"] * 2
    assert created.json()["secret"] not in str([e.detail for _, e in published])
    assert hashlib.sha256(ADMIN.encode()).hexdigest() not in str(published)


async def test_each_named_admin_key_is_its_own_caller(server: JetStreamServer) -> None:
    alice, bob = "sk-admin-alice", "sk-admin-bob"
    config = GatewayConfig.model_validate({"admin": {"keys": [
        {"name": "alice", "key_sha256": hash_api_key(alice)}, {"name": "bob", "key_sha256": hash_api_key(bob)}]}})
    view = ConfigView.of(config)
    env_key = hash_api_key(ADMIN)  # GATEWAY_ADMIN_KEY_SHA256 works next to the named keys
    async with client_for(AdminApi(lambda: server.js, lambda: view, env_key, identity="ingress")) as client:
        for secret, team in ((bob, "b"), (alice, "a"), (ADMIN, "e")):
            done = await client.put(f"/admin/v1/budgets/team/{team}", headers={"authorization": f"Bearer {secret}"},
                                    json={"rpm": 5})
            assert done.status_code == 200, done.text
        wrong = await client.get("/admin/v1/keys", headers={"authorization": "Bearer sk-admin-carol"})
        assert wrong.status_code == 401 and error(wrong)["code"] == "invalid_admin_key"
    actors = [(e.subject, e.actor) for _, e in await audit_published(server.js)]
    assert actors == [("team.b", "admin-api:bob"), ("team.a", "admin-api:alice"),
                      ("team.e", f"admin-api:{env_key[:12]}")]


def test_admin_key_names_and_hashes_are_distinct() -> None:
    one = {"name": "alice", "key_sha256": hash_api_key("x")}
    with pytest.raises(ValueError, match="share a name"):
        GatewayConfig.model_validate({"admin": {"keys": [one, {**one, "key_sha256": hash_api_key("y")}]}})
    with pytest.raises(ValueError, match="appears twice"):
        GatewayConfig.model_validate({"admin": {"keys": [one], "key_sha256": one["key_sha256"]}})
    with pytest.raises(ValueError, match="name"):
        GatewayConfig.model_validate({"admin": {"keys": [{**one, "name": "alice smith"}]}})


@pytest.mark.parametrize("value", ["1\\>LPÞ", "a..b", "x*y", ".a", "a b"])
def test_ids_no_kv_key_can_hold_are_404_not_500(value: str) -> None:
    with pytest.raises(NotFound) as err:
        _checked({"id": value})
    assert err.value.param == "id"
    assert _checked({"id": "key_1.a-b=c"}) == {"id": "key_1.a-b=c"}
