"""The tamper-evident audit log through a real gateway: control-plane changes made with the CLI
(`gateway config apply`, `gateway keys create|revoke`, `gateway budgets set`) and a guardrail block
become chained rows of `audit_log`; `gateway audit verify` passes; an anchor lands in `gateway_events`.
Then, with the gateway stopped, one row is altered and others deleted in the embedded store directly
(`gateway sql` is read-only): `gateway audit verify` exits 1 naming each.

The actor of each row is the NATS identity of the subject its entry arrived on, which the broker
authenticates (each identity may publish only on its own `gw.audit.by.<identity>`), never the entry's
own claim: `gateway up` publishes its file as `supervisor`, the sink records guardrail blocks as `sink`,
the CLI acts as `admin` (the data directory's default creds) or as an operator's (`gateway operators
add`, `GATEWAY_NATS_CREDS`); ingress is believed about the admin key that called it; an operator
publishing `actor="root"` is recorded as itself, and is refused on another identity's subject.

Its own gateway (module scope): the tests run in order and share its store.
"""

from __future__ import annotations

import asyncio
import base64
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
import yaml

from infra.nats_creds import seed_path
from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, start_gateway
from schemas.audit import AuditEntry
from schemas.ids import uuid7
from schemas.wire import encode
from tests.support.nats_creds import Refusals, connect_as

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
                            extra_env={"GATEWAY_AUDIT_ANCHOR_MINUTES": "0.05",  # an anchor every 3 s
                                       "GATEWAY_ADMIN_KEY_SHA256": sha256(SHARED)})  # unnamed: its fingerprint
    try:
        yield gateway
    finally:
        gateway.stop()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def publish_as(gw: RunningGateway, identity: str, sent: list[tuple[str, AuditEntry]]) -> Refusals:
    """Entries published straight onto the broker as ``identity`` (core publishes: the stream stores what
    the broker lets through); the refusals nats-server sent back."""
    refusals = Refusals()
    nc = await connect_as(gw.nats_url, gw.data_dir, identity, refusals)
    try:
        for subject, entry in sent:
            await nc.publish(subject, encode(entry), headers={"Nats-Msg-Id": entry.entry_id})
        await nc.flush()
        await asyncio.sleep(0.5)  # a refusal arrives after the flush's pong
    finally:
        await nc.close()
    return refusals


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
    # `gateway up` published its file: the first entry, as the supervisor's identity
    first = audit_rows(gw, 1)
    assert first[0]["seq"] == 1 and first[0]["kind"] == "config" and first[0]["actor"] == "nats:supervisor"
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
    assert by["guardrail_block", "blocked"]["actor"] == "nats:sink"  # the sink records guardrail blocks
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
    # the CLI code path as another operator: the identity of the creds GATEWAY_NATS_CREDS names
    for name in ("alice", "mallory"):
        added = cli(gw, "operators", "add", name)
        assert added.returncode == 0, added.stderr
    as_alice = {**gw.env, "GATEWAY_NATS_CREDS": str(seed_path(gw.data_dir, "op-alice"))}
    made = cli(gw, "keys", "create", "--id", "by-op-alice", "--tenant", "acme", "--json", env=as_alice)
    assert made.returncode == 0, made.stderr
    whoami = cli(gw, "whoami", "--json", env=as_alice)
    assert json.loads(whoami.stdout)["actor"] == "nats:op-alice" and whoami.returncode == 0, whoami.stderr

    # the admin API of the gateway's ingress (identity `ingress`): believed about the key that called it
    for secret, key_id in ((SHARED, "by-shared-key"), (ALICE, "by-alice")):
        done = httpx.post(f"{gw.base_url}/admin/v1/keys", headers={"authorization": f"Bearer {secret}"},
                          json={"id": key_id, "tenant": "acme"}, timeout=30)
        assert done.status_code == 201, done.text

    def claiming(subject: str, actor: str) -> AuditEntry:
        return AuditEntry(entry_id=uuid7(), ts=time.time(), kind="key", actor=actor, subject=subject,
                          action="updated", detail={})

    refused = asyncio.run(publish_as(gw, "op-mallory", [
        ("gw.audit.by.op-mallory", claiming("key.forged-root", "root")),
        ("gw.audit.by.op-mallory", claiming("key.forged-admin", "admin-api:alice")),
        ("gw.audit.by.admin", claiming("key.as-admin", "cli:ann@box")),  # another identity's subject
        ("gw.audit", claiming("key.old-subject", "cli:ann@box")),  # the bare subject names nobody
    ]))
    assert refused.of("publish", "gw.audit.by.admin") and refused.of("publish", "gw.audit")

    rows = audit_rows(gw, before + 5)
    time.sleep(1.5)  # a refused entry would have landed by now
    rows = audit_rows(gw, before + 5)
    got = {r["subject"]: (r["actor"], json.loads(r["detail"]).get("claimed_actor")) for r in rows[before:]}
    assert got == {
        "key.by-op-alice": ("nats:op-alice", None),
        "key.by-shared-key": (f"admin-api:{sha256(SHARED)[:12]} via nats:ingress", None),
        "key.by-alice": ("admin-api:alice via nats:ingress", None),
        "key.forged-root": ("nats:op-mallory", "root"),
        "key.forged-admin": ("nats:op-mallory", "admin-api:alice"),
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
