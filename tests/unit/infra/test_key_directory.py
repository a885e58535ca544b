"""The live key directory against a real JetStream: the config's keys plus GW_KEYS and GW_LIMITS,
a change pushed within a second (created, revoked, deleted), a new config version followed, and the
config's keys served while the buckets do not exist yet."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from infra.governance_admin import GovernanceAdmin
from infra.key_directory import LiveKeyDirectory, StaticKeys, config_directory
from infra.live_config import LiveConfig
from schemas import subjects
from schemas.config import GatewayConfig, hash_api_key
from schemas.governance_admin import BudgetSet, KeyCreate
from tests.support.jetstream import JetStreamServer, eventually, jetstream_server

pytestmark = pytest.mark.server

CONFIG = GatewayConfig.model_validate(
    {"keys": [{"id": "file", "key_sha256": hash_api_key("sk-file"), "tenant": "acme", "team": "ml"}]})


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with jetstream_server(tmp_path / "nats") as srv:
        yield srv


def test_config_keys_become_virtual_keys() -> None:
    key = config_directory(CONFIG).lookup(hash_api_key("sk-file"), time.time())
    assert not isinstance(key, str)
    assert (key.id, key.tenant, key.team, key.source) == ("file", "acme", "ml", "config")


def test_static_keys_follow_the_config_version() -> None:
    live = LiveConfig.static(CONFIG, "v1")
    keys = StaticKeys(live)
    first = keys.get()
    assert keys.get() is first and len(first) == 1
    live._activate_now(GatewayConfig(), "v2")
    assert len(keys.get()) == 0


async def test_kv_keys_and_levels_are_watched(server: JetStreamServer) -> None:
    live = LiveConfig.static(CONFIG, "v1")
    directory = LiveKeyDirectory(live, "test")
    await directory.start(server.url)
    try:
        assert len(directory.get()) == 1
        admin = GovernanceAdmin(server.js, identity="admin")
        issued = await admin.create_key(KeyCreate(id="k1", tenant="acme", team="ml"))
        key_hash = hash_api_key(issued.secret)
        await eventually(lambda: directory.get().by_id("k1") is not None, 2.0, "created key seen")
        assert directory.get().lookup(key_hash, time.time()) == directory.get().by_id("k1")
        await admin.set_level("team", "ml", BudgetSet(usd="5"))
        await eventually(lambda: directory.get().level("team", "ml") is not None, 2.0, "team policy seen")

        began = time.monotonic()
        await admin.revoke_key("k1")
        await eventually(lambda: directory.get().lookup(key_hash, time.time()) == "revoked", 1.0, "revocation")
        assert time.monotonic() - began < 1.0

        kv = await server.js.key_value(subjects.BUCKET_KEYS)
        await kv.delete("key.k1")
        await eventually(lambda: directory.get().by_id("k1") is None, 2.0, "deletion seen")
        live._activate_now(GatewayConfig(), "v2")  # the config's key goes with its version
        assert directory.get().by_id("file") is None
    finally:
        await directory.stop()


async def test_existing_entries_are_read_at_start(server: JetStreamServer) -> None:
    await GovernanceAdmin(server.js, identity="admin").create_key(KeyCreate(id="early", tenant="acme"))
    directory = LiveKeyDirectory(LiveConfig.static(CONFIG), "test")
    await directory.start(server.url)
    try:
        assert directory.get().by_id("early") is not None  # start waits until both buckets were read
    finally:
        await directory.stop()


async def test_without_buckets_the_config_keys_still_work(tmp_path: Path) -> None:
    async with jetstream_server(tmp_path / "bare", declare=False) as bare:
        directory = LiveKeyDirectory(LiveConfig.static(CONFIG), "test")
        await directory.start(bare.url, wait_s=0.5)
        try:
            assert directory.get().by_id("file") is not None
        finally:
            await directory.stop()
