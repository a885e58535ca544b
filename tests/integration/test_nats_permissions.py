"""One NATS identity per role, against the embedded nats-server of a real ``gateway up``: no one gets in
without a seed the gateway generated; each role is refused by the server where it must not go (a
refused publish stores nothing, a refused subscription receives nothing); the chain still answers; an
operator added while the gateway runs is let in at once, and shut out once removed.

One gateway for the module (the session's); every wait polls for a condition, the time limits only
bound a failure.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import openai
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from infra import nats_creds
from infra.nats_permissions import IDENTITIES, STAGE_ROLES
from infra.operator.launcher import DEMO_KEY, RunningGateway
from schemas import subjects
from tests.support.jetstream import eventually
from tests.support.nats_creds import Refusals, connect_as

pytestmark = pytest.mark.integration


async def quiet(_exc: Exception) -> None:
    return None


async def _refused_connect(url: str, **auth: str) -> str:
    nc = NatsClient()
    try:
        with pytest.raises(nats.errors.Error) as caught:
            await nc.connect(url, allow_reconnect=False, connect_timeout=5, error_cb=quiet, **auth)
    finally:
        await nc.close()  # a refused connect leaves its socket open otherwise
    return str(caught.value)


async def test_an_unauthenticated_connect_is_refused(gateway: RunningGateway) -> None:
    assert "Authorization Violation" in await _refused_connect(gateway.nats_url)


async def test_a_seed_the_gateway_did_not_generate_is_refused(gateway: RunningGateway, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.nk"
    assert nats_creds.write_seed(stranger)
    assert "Authorization Violation" in await _refused_connect(gateway.nats_url, nkeys_seed=str(stranger))


def test_seed_files_are_the_owners_alone(gateway: RunningGateway) -> None:
    folder = nats_creds.creds_dir(gateway.data_dir)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for identity in IDENTITIES:
        path = nats_creds.seed_path(gateway.data_dir, identity)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    server_conf = (gateway.data_dir / "nats" / "authorization.conf").read_text()
    seed = nats_creds.seed_path(gateway.data_dir, "admin").read_text().strip()
    assert seed not in server_conf and nats_creds.public_key(nats_creds.seed_path(gateway.data_dir, "admin")) \
        in server_conf  # the server holds public keys only


async def _as(gateway: RunningGateway, identity: str) -> tuple[NatsClient, Refusals]:
    refusals = Refusals()
    return await connect_as(gateway.nats_url, gateway.data_dir, identity, refusals), refusals


async def _last_seq(gateway: RunningGateway, stream: str) -> int:
    admin, _ = await _as(gateway, "admin")
    try:
        info = await admin.jetstream().stream_info(stream)
        return int(info.state.last_seq)
    finally:
        await admin.close()


SUBSCRIBE_REFUSED = [
    ("redaction", subjects.REQ_CALL),
    ("ingress", subjects.REQ_CALL),
    ("stages", f"{subjects.REPLY_PREFIX}.>"),
    *[(stage, f"{subjects.REPLY_PREFIX}.>") for stage in STAGE_ROLES],
    ("sink", subjects.REQ_REDACT),
    ("analyst", subjects.SQL_QUERY),
    ("analyst", ">"),
    ("provider", f"{subjects.inbox_prefix('ingress')}.>"),
    ("ingress", f"{subjects.inbox_prefix('admin')}.>"),
    ("redaction", subjects.kv_keys(subjects.BUCKET_CONFIG)),
]


@pytest.mark.parametrize(("identity", "subject"), SUBSCRIBE_REFUSED, ids=[f"{i}:{s}" for i, s in SUBSCRIBE_REFUSED])
async def test_a_subscription_where_a_role_must_not_listen_is_refused(gateway: RunningGateway, identity: str,
                                                                      subject: str) -> None:
    nc, refusals = await _as(gateway, identity)
    got: list[Msg] = []

    async def take(msg: Msg) -> None:
        got.append(msg)

    try:
        await nc.subscribe(subject, cb=take)
        await nc.flush()
        await eventually(lambda: refusals.of("subscription", subject), what=f"{identity} refused {subject}")
        if subject == subjects.REQ_CALL:  # the chain runs a request through gw.req.call: none of it reaches us
            with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=DEMO_KEY, max_retries=0,
                               timeout=30) as client:
                await asyncio.to_thread(client.chat.completions.create, model="gpt-4o-mini",
                                        messages=[{"role": "user", "content": "hi"}])
            await nc.flush()
        assert got == []
    finally:
        await nc.close()


CONFIG_KEY = subjects.kv_key(subjects.BUCKET_CONFIG, subjects.CONFIG_KEY)
PUBLISH_REFUSED = [
    ("ingress", CONFIG_KEY, f"KV_{subjects.BUCKET_CONFIG}"),
    ("analyst", CONFIG_KEY, f"KV_{subjects.BUCKET_CONFIG}"),
    ("analyst", subjects.kv_key(subjects.BUCKET_KEYS, "key.intruder"), f"KV_{subjects.BUCKET_KEYS}"),
    ("stages", subjects.kv_key(subjects.BUCKET_KEYS, "key.intruder"), f"KV_{subjects.BUCKET_KEYS}"),
    ("sink", subjects.REQ_REDACT, subjects.STREAM_REQUESTS),
    ("policy", subjects.REQ_REDACT, subjects.STREAM_REQUESTS),
    ("provider", subjects.audit_subject("admin"), subjects.STREAM_AUDIT),
    ("ingress", subjects.audit_subject("sink"), subjects.STREAM_AUDIT),
]


@pytest.mark.parametrize(("identity", "subject", "stream"), PUBLISH_REFUSED,
                         ids=[f"{i}:{s}" for i, s, _ in PUBLISH_REFUSED])
async def test_a_publish_where_a_role_must_not_write_is_refused_and_stores_nothing(
        gateway: RunningGateway, identity: str, subject: str, stream: str) -> None:
    before = await _last_seq(gateway, stream)
    nc, refusals = await _as(gateway, identity)
    try:
        with pytest.raises(nats.errors.TimeoutError):  # JetStream never saw it, so it never acks
            await nc.jetstream().publish(subject, b'{"forged": true}', timeout=1.0)
        await eventually(lambda: refusals.of("publish", subject), what=f"{identity} refused on {subject}")
    finally:
        await nc.close()
    assert await _last_seq(gateway, stream) == before


JS_API_REFUSED: list[tuple[str, Callable[[NatsClient], Awaitable[object]], str]] = [
    ("analyst", lambda nc: nc.jetstream(timeout=1).stream_info(subjects.STREAM_REQUESTS),
     subjects.js_stream_api("INFO", subjects.STREAM_REQUESTS)),
    ("analyst", lambda nc: nc.request(subjects.js_consumer_api("MSG.NEXT", subjects.STREAM_REQUESTS,
                                                                subjects.CONSUMER_REDACT), b"1", timeout=1),
     subjects.js_consumer_api("MSG.NEXT", subjects.STREAM_REQUESTS, subjects.CONSUMER_REDACT)),
    ("ingress", lambda nc: nc.request(subjects.js_consumer_api("MSG.NEXT", subjects.STREAM_EVENTS,
                                                                subjects.CONSUMER_SINK), b"1", timeout=1),
     subjects.js_consumer_api("MSG.NEXT", subjects.STREAM_EVENTS, subjects.CONSUMER_SINK)),
    ("stages", lambda nc: nc.jetstream(timeout=1).delete_stream(subjects.STREAM_REQUESTS),
     subjects.js_stream_api("DELETE", subjects.STREAM_REQUESTS)),
    ("sink", lambda nc: nc.jetstream(timeout=1).delete_consumer(subjects.STREAM_REQUESTS,
                                                                 subjects.CONSUMER_REDACT),
     subjects.js_consumer_api("DELETE", subjects.STREAM_REQUESTS, subjects.CONSUMER_REDACT)),
]


@pytest.mark.parametrize(("identity", "call", "subject"), JS_API_REFUSED,
                         ids=[f"{i}:{s}" for i, _, s in JS_API_REFUSED])
async def test_jetstream_api_beyond_a_roles_own_is_refused(gateway: RunningGateway, identity: str,
                                                           call: Callable[[NatsClient], Awaitable[object]],
                                                           subject: str) -> None:
    nc, refusals = await _as(gateway, identity)
    try:
        with pytest.raises(nats.errors.Error):  # no answer (timeout) or no responders: never the data
            await call(nc)
        await eventually(lambda: refusals.of("publish", subject), what=f"{identity} refused on {subject}")
    finally:
        await nc.close()
    admin, _ = await _as(gateway, "admin")
    try:  # still there
        await admin.jetstream().consumer_info(subjects.STREAM_REQUESTS, subjects.CONSUMER_REDACT)
    finally:
        await admin.close()


def _cli(gateway: RunningGateway, *args: str, creds: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(gateway.env)
    if creds is not None:
        env["GATEWAY_NATS_CREDS"] = str(creds)
    return subprocess.run([sys.executable, "-m", "infra.operator.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_analyst_asks_sql_and_nothing_else(gateway: RunningGateway) -> None:
    analyst = nats_creds.seed_path(gateway.data_dir, "analyst")
    out = _cli(gateway, "sql", "--format", "json", "SELECT 1 AS one", creds=analyst)
    assert out.returncode == 0, out.stderr
    assert '"rows":[[1]]' in out.stdout.replace(" ", "")


async def test_the_analyst_cannot_read_the_config_or_the_keys(gateway: RunningGateway) -> None:
    nc, refusals = await _as(gateway, "analyst")
    try:
        for bucket in (subjects.BUCKET_CONFIG, subjects.BUCKET_KEYS):
            with pytest.raises(nats.errors.Error):  # refused: no answer comes (1 s, not the default 5)
                await nc.jetstream(timeout=1).key_value(bucket)
            stream_info = subjects.js_stream_api("INFO", subjects.kv_stream(bucket))
            await eventually(lambda s=stream_info: refusals.of("publish", s), what=f"analyst refused {bucket}")
    finally:
        await nc.close()


def test_the_cli_runs_as_admin_by_default(gateway: RunningGateway) -> None:
    out = _cli(gateway, "config", "show")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("version ")


def test_an_operator_added_while_running_is_let_in_and_shut_out_once_removed(gateway: RunningGateway) -> None:
    out = _cli(gateway, "operators", "add", "alice")
    assert out.returncode == 0, out.stderr
    assert "reloaded nats-server" in out.stdout
    creds = nats_creds.seed_path(gateway.data_dir, "op-alice")
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    shown = _cli(gateway, "config", "show", creds=creds)
    assert shown.returncode == 0, shown.stderr
    listed = _cli(gateway, "operators", "list")
    assert "op-alice" in listed.stdout
    out = _cli(gateway, "operators", "remove", "alice")
    assert out.returncode == 0, out.stderr
    assert not creds.exists()
    nats_creds.write_seed(creds)  # the same name again, but a seed the server was never told about
    try:
        refused = _cli(gateway, "config", "show", creds=creds)
        assert refused.returncode == 1
        assert "refused the credentials" in refused.stderr
    finally:
        os.unlink(creds)


def test_the_chain_answers_with_every_role_on_its_own_identity(gateway: RunningGateway) -> None:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=DEMO_KEY, max_retries=0, timeout=30) as client:
        answer = client.chat.completions.create(model="gpt-4o-mini",
                                                messages=[{"role": "user", "content": "mail bob@example.com"}])
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                     messages=[{"role": "user", "content": "hi"}]))
    assert answer.choices[0].message.content
    assert chunks
    assert gateway.permission_violations() == []  # the chain never hit a refusal; this module's probes did
