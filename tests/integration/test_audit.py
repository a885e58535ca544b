"""The tamper-evident audit log through a real gateway: control-plane changes made with the CLI
(`gateway config apply`, `gateway keys create|revoke`, `gateway budgets set`) and a guardrail block
become chained rows of `audit_log`; `gateway audit verify` passes; an anchor lands in `gateway_events`.
Then, with the gateway stopped, one row is altered and others deleted in the embedded store directly
(`gateway sql` is read-only): `gateway audit verify` exits 1 naming each.

The actor of each row is the NATS identity of the subject its entry arrived on, never the entry's own
claim: the CLI acts as `admin` (the data directory's default creds) or as `GATEWAY_NATS_CREDS`'s
identity; an ingress running as `ingress` is believed about the admin key that called it, the gateway's
own ingress here (no creds until per-process identities land: `anonymous`) is not; a publisher writing
`actor="root"` is recorded as its subject's identity. Only the creds file's path names an identity in
these tests (nothing connects with it yet).

Its own gateway (module scope): the tests run in order and share its store.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import nats
import openai
import pytest
import yaml

from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, start_gateway
from schemas.audit import AuditEntry
from schemas.ids import uuid7
from schemas.wire import encode

pytestmark = pytest.mark.integration

ALTER = """
import sys
from infra.clickhouse import open_store
store = open_store(sys.argv[1])
try:
    store._client.command(sys.argv[2], parameters={"value": sys.argv[3]} if len(sys.argv) > 3 else None)
finally:
    store.close()
"""


ALICE = "sk-admin-alice"
SHARED = "sk-admin-shared"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    config = gateway_config(free_port(), admin={"keys": [{"name": "alice", "key_sha256": sha256(ALICE)}]})
    gateway = start_gateway(tmp_path_factory.mktemp("audit"), config=config,
                            extra_env={"GATEWAY_AUDIT_ANCHOR_MINUTES": "0.05"})  # an anchor every 3 s
    try:
        yield gateway
    finally:
        gateway.stop()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@contextlib.contextmanager
def ingress_as_ingress(gw: RunningGateway) -> Iterator[str]:
    """One more ingress process on the gateway's NATS, given the `ingress` identity's creds path and the
    shared admin key in its environment (as `gateway up` gives ingress GATEWAY_ADMIN_KEY_SHA256); stopped
    by PID. Yields its base URL once ready."""
    port = free_port()
    env = {**gw.env, "NATS_URL": gw.nats_url, "GATEWAY_PORT": str(port),
           "GATEWAY_NATS_CREDS": str(gw.root / "creds" / "ingress.nk"), "GATEWAY_ADMIN_KEY_SHA256": sha256(SHARED)}
    with open(gw.root / "ingress-as-ingress.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "ingress"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            assert process.poll() is None and time.monotonic() < deadline, \
                (gw.root / "ingress-as-ingress.log").read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def publish_raw(gw: RunningGateway, sent: list[tuple[str, AuditEntry]]) -> None:
    """Entries published straight onto the broker, as any client could (no per-process users yet)."""
    nc = await nats.connect(gw.nats_url, connect_timeout=5)
    try:
        js = nc.jetstream()
        for subject, entry in sent:
            await js.publish(subject, encode(entry), headers={"Nats-Msg-Id": entry.entry_id})
    finally:
        await nc.close()


def cli(gw: RunningGateway, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "infra.operator.cli", *args], env=env or gw.env,
                          capture_output=True, text=True, timeout=120)


def store_url(gw: RunningGateway) -> str:
    return f"chdb://{(gw.root / 'data' / 'clickhouse').resolve()}"


def direct_env(gw: RunningGateway) -> dict[str, str]:
    """`gateway audit verify` reading the embedded store itself (the sink that owned it is stopped)."""
    return {**gw.env, "CLICKHOUSE_URL": store_url(gw)}


def alter(gw: RunningGateway, sql: str, value: str | None = None) -> None:
    args = [sys.executable, "-c", ALTER, store_url(gw), sql, *([value] if value is not None else [])]
    out = subprocess.run(args, env=gw.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def audit_rows(gw: RunningGateway, count: int) -> list[dict[str, Any]]:
    return gw.wait_rows("SELECT seq, kind, actor, subject, action, detail FROM audit_log ORDER BY seq",
                        lambda rows: len(rows) >= count, timeout_s=30)


def test_control_plane_changes_and_a_block_are_chained(gw: RunningGateway) -> None:
    # `gateway up` published its file: the first entry (the supervisor has no creds here: anonymous)
    first = audit_rows(gw, 1)
    assert first[0]["seq"] == 1 and first[0]["kind"] == "config" and first[0]["actor"] == "nats:anonymous"
    assert json.loads(first[0]["detail"])["source"].startswith("file:")

    changed = yaml.safe_load((gw.root / "gateway.yaml").read_text())
    changed["guardrail_profiles"] = {"audit-strict": {"guardrails": [{"use": "secrets", "action": "block"}]}}
    path = gw.root / "changed.yaml"
    path.write_text(yaml.safe_dump(changed))
    applied = cli(gw, "config", "apply", str(path))
    assert applied.returncode == 0, applied.stderr
    created = cli(gw, "keys", "create", "--id", "audit-k1", "--tenant", "acme", "--rpm", "60", "--json")
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["secret"]
    revoked = cli(gw, "keys", "revoke", "audit-k1")
    assert revoked.returncode == 0, revoked.stderr
    budget = cli(gw, "budgets", "set", "--team", "search", "--rpm", "100")
    assert budget.returncode == 0, budget.stderr
    b64 = base64.b64encode(b"the code is TOP-SECRET-ALPHA").decode()
    with openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=DEMO_KEY, max_retries=0, timeout=30) as client, \
            pytest.raises(openai.BadRequestError) as blocked:
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": f"x [[mock reply_b64={b64}]]"}])
    assert blocked.value.code == "content_blocked"

    rows = audit_rows(gw, 6)
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    by = {(r["kind"], r["action"]): r for r in rows}
    config = json.loads(by["config", "applied"]["detail"])  # the last config entry: the apply
    # the CLI acts as the data directory's admin identity; the OS user is only a hint in the detail
    assert by["config", "applied"]["actor"] == "nats:admin" and config["file"] == str(path.resolve())
    assert config["source"] == "apply:nats:admin" and "@" in config["reported_by"]
    assert config["guardrail_profiles"] == {"added": ["audit-strict"], "removed": [], "changed": []}
    assert by["key", "created"]["actor"] == "nats:admin" and by["key", "created"]["subject"] == "key.audit-k1"
    assert {r["actor"] for r in rows if r["kind"] in ("key", "budget")} == {"nats:admin"}
    assert by["guardrail_block", "blocked"]["actor"] == "nats:anonymous"  # the sink, without creds here
    assert json.loads(by["key", "revoked"]["detail"])["changes"]["revoked_at"]["before"] is None
    assert by["budget", "set"]["subject"] == "team.search"
    assert json.loads(by["guardrail_block", "blocked"]["detail"])["guardrails"][0]["guardrail"] == "output_filter"
    everything = json.dumps(rows)
    assert secret not in everything and "sha256" not in everything

    # an auditor's recomputation of one row from `gateway sql` output (infra/clickhouse/README.md)
    raw = cli(gw, "sql", "--format", "json", "SELECT seq, toUnixTimestamp64Milli(ts) AS ts_ms, kind, actor, subject, "
              "action, detail, entry_id, prev_hash, hash FROM audit_log WHERE seq = 3")
    row = json.loads(raw.stdout)["rows"][0]
    canonical = json.dumps(row[:9], separators=(",", ":"), ensure_ascii=True).encode()
    assert hashlib.sha256(bytes.fromhex(row[8]) + canonical).hexdigest() == row[9]

    verified = cli(gw, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert f"audit_log intact: {len(rows)} rows" in verified.stdout
    report = json.loads(cli(gw, "audit", "verify", "--json").stdout)
    assert report["intact"] is True and report["last_seq"] == len(rows)
    anchors = gw.wait_rows("SELECT toUInt64(subject) AS seq, to_state FROM gateway_events "
                           "WHERE kind = 'audit_anchor' ORDER BY ts DESC", lambda r: len(r) >= 1)
    assert anchors[0]["seq"] >= 1


def test_the_actor_is_the_authenticated_identity(gw: RunningGateway) -> None:
    before = len(audit_rows(gw, 6))
    # the CLI code path as another operator: the identity GATEWAY_NATS_CREDS names
    as_alice = {**gw.env, "GATEWAY_NATS_CREDS": str(gw.root / "creds" / "op-alice.nk")}
    made = cli(gw, "keys", "create", "--id", "by-op-alice", "--tenant", "acme", "--json", env=as_alice)
    assert made.returncode == 0, made.stderr
    whoami = cli(gw, "whoami", "--json", env=as_alice)
    assert json.loads(whoami.stdout)["actor"] == "nats:op-alice" and whoami.returncode == 1  # no such file yet

    # the admin API of an ingress running as `ingress`: believed about the key that called it
    with ingress_as_ingress(gw) as url:
        for secret, key_id in ((SHARED, "by-shared-key"), (ALICE, "by-alice")):
            done = httpx.post(f"{url}/admin/v1/keys", headers={"authorization": f"Bearer {secret}"},
                              json={"id": key_id, "tenant": "acme"}, timeout=30)
            assert done.status_code == 201, done.text
    # the gateway's own ingress has no identity here: its admin-api claim is kept, not believed
    done = httpx.post(f"{gw.base_url}/admin/v1/keys", headers={"authorization": f"Bearer {ALICE}"},
                      json={"id": "by-anonymous-ingress", "tenant": "acme"}, timeout=30)
    assert done.status_code == 201, done.text

    def claiming(subject: str, actor: str) -> AuditEntry:
        return AuditEntry(entry_id=uuid7(), ts=time.time(), kind="key", actor=actor, subject=subject,
                          action="updated", detail={})

    asyncio.run(publish_raw(gw, [
        ("gw.audit.by.op-mallory", claiming("key.forged-root", "root")),
        ("gw.audit.by.op-mallory", claiming("key.forged-admin", "admin-api:alice")),
        ("gw.audit", claiming("key.old-subject", "cli:ann@box")),
    ]))

    rows = audit_rows(gw, before + 6)
    got = {r["subject"]: (r["actor"], json.loads(r["detail"]).get("claimed_actor")) for r in rows[before:]}
    assert got == {
        "key.by-op-alice": ("nats:op-alice", None),
        "key.by-shared-key": (f"admin-api:{sha256(SHARED)[:12]} via nats:ingress", None),
        "key.by-alice": ("admin-api:alice via nats:ingress", None),
        "key.by-anonymous-ingress": ("nats:anonymous", "admin-api:alice"),
        "key.forged-root": ("nats:op-mallory", "root"),
        "key.forged-admin": ("nats:op-mallory", "admin-api:alice"),
        "key.old-subject": ("unauthenticated:cli:ann@box", None),
    }
    assert sha256(SHARED) not in json.dumps(rows) and sha256(ALICE) not in json.dumps(rows)
    verified = cli(gw, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert f"audit_log intact: {len(rows)} rows" in verified.stdout


def test_an_altered_row_and_deleted_rows_are_named(gw: RunningGateway) -> None:
    rows = audit_rows(gw, 6)
    last = len(rows)
    gw.stop()  # the sink writes its shutdown anchor, then releases the store
    assert "audit anchor (shutdown)" in gw.log("sink")
    env = direct_env(gw)
    assert cli(gw, "audit", "verify", env=env).returncode == 0

    original = rows[2]["actor"]
    alter(gw, "ALTER TABLE audit_log UPDATE actor = 'mallory@evil' WHERE seq = 3 SETTINGS mutations_sync = 1")
    altered = cli(gw, "audit", "verify", env=env)
    assert altered.returncode == 1
    assert "BROKEN at seq 3 (altered)" in altered.stderr and "What to do" in altered.stderr

    alter(gw, "ALTER TABLE audit_log UPDATE actor = {value:String} WHERE seq = 3 SETTINGS mutations_sync = 1",
          original)
    assert cli(gw, "audit", "verify", env=env).returncode == 0  # exactly the row as written verifies again

    alter(gw, "ALTER TABLE audit_log DELETE WHERE seq = 2 SETTINGS mutations_sync = 1")
    deleted = cli(gw, "audit", "verify", env=env)
    assert deleted.returncode == 1 and "BROKEN at seq 2 (missing)" in deleted.stderr
    assert cli(gw, "audit", "verify", "--since", "3", env=env).returncode == 0  # from seq 3 on, intact

    alter(gw, f"ALTER TABLE audit_log DELETE WHERE seq = {last} SETTINGS mutations_sync = 1")
    tail = cli(gw, "audit", "verify", "--json", env=env)
    assert tail.returncode == 1
    problems = [(p["kind"], p["seq"]) for p in json.loads(tail.stdout)["problems"]]
    assert problems == [("missing", 2), ("missing", last)]


def test_verify_refuses_a_bad_since() -> None:
    out = subprocess.run([sys.executable, "-m", "infra.operator.cli", "audit", "verify", "--since", "yesterday"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--since takes a seq or an ISO-8601 time" in out.stderr
