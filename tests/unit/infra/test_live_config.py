"""LiveConfig against a real nats-server: initial load, the watcher swapping the config and calling
back, history by version, invalid values ignored."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from nats.js import JetStreamContext

from infra.bootstrap import check_config
from infra.config import ConfigError, version_of
from infra.config_store import ActiveConfig, config_bucket, publish_config
from infra.live_config import LiveConfig
from schemas import subjects
from schemas.config import GatewayConfig
from schemas.events import ControlAttrs, ControlEvent
from schemas.wire import decode
from tests.support.jetstream import JetStreamServer, eventually, jetstream_server

pytestmark = pytest.mark.server  # a real nats-server


def config_text(*aliases: str, **extra: Any) -> str:
    return yaml.safe_dump({
        "providers": {"p1": {"type": "openai", "base_url": "http://p1/v1"}},
        "models": {a: {"targets": [{"provider": "p1", "model": f"{a}-1"}]} for a in aliases},
        **extra,
    })


FILE_TEXT = config_text("from-file")
KV_TEXT = config_text("from-kv")


async def publish(js: JetStreamContext, text: str, source: str) -> str:
    """``publish_config`` as ``gateway up`` calls it (its process's identity)."""
    return await publish_config(js, text, source, check=check_config, identity="supervisor")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with jetstream_server(tmp_path / "nats") as srv:
        yield srv


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(FILE_TEXT)
    return path


@pytest.fixture
async def live(server: JetStreamServer, config_file: Path) -> AsyncIterator[LiveConfig]:
    await publish(server.js, KV_TEXT, "file:test")
    lc = LiveConfig(config_file, "tester", check=check_config, resync_s=30)
    await lc.start(server.url)
    try:
        yield lc
    finally:
        await lc.stop()


async def activations(server: JetStreamServer) -> list[ControlEvent]:
    info = await server.js.stream_info(subjects.STREAM_EVENTS)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await server.js.get_msg(subjects.STREAM_EVENTS, seq)
        event = decode(msg.data, ControlEvent)
        if event.reason == "activated":
            out.append(event)
    return out


# -- initial load -----------------------------------------------------------------------------------


async def test_falls_back_to_the_file_when_nothing_was_published(server: JetStreamServer, config_file: Path) -> None:
    lc = LiveConfig(config_file, "tester", check=check_config)
    await lc.start(server.url)
    try:
        assert lc.version == version_of(FILE_TEXT)
        assert list(lc.current.models) == ["from-file"]
        # and then follows the KV once something is published
        version = await publish(server.js, KV_TEXT, "apply:x@y")
        await eventually(lambda: lc.version == version, what="the published config taken")
        assert list(lc.current.models) == ["from-kv"]
    finally:
        await lc.stop()


async def test_the_kv_wins_over_the_file(live: LiveConfig) -> None:
    assert live.version == version_of(KV_TEXT)
    assert list(live.current.models) == ["from-kv"]
    assert live.get(live.version) is live.current


async def test_invalid_kv_value_at_start_falls_back_to_the_file(server: JetStreamServer, config_file: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    bad = config_text("bad", models={"bad": {"targets": [{"provider": "nope", "model": "x"}]}})
    kv = await config_bucket(server.js)
    await kv.put(subjects.CONFIG_KEY, ActiveConfig(version_of(bad), bad, "sneaky", 1.0).to_json())
    lc = LiveConfig(config_file, "tester", check=check_config)
    with caplog.at_level(logging.ERROR, logger="gateway.config"):
        await lc.start(server.url)
    try:
        assert lc.version == version_of(FILE_TEXT)
        assert "models.bad.targets.0.provider" in caplog.text
    finally:
        await lc.stop()


async def test_an_invalid_file_without_a_kv_value_fails_the_start(server: JetStreamServer, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("models: {m: {targets: []}}\n")
    lc = LiveConfig(path, "tester", check=check_config)
    with pytest.raises(ConfigError, match=str(path)):
        await lc.start(server.url)
    await lc.stop()


async def test_not_started() -> None:
    lc = LiveConfig(Path("/nonexistent.yaml"), "tester", check=check_config)
    with pytest.raises(RuntimeError, match="not started"):
        _ = lc.current
    assert lc.version == ""


# -- the watcher ------------------------------------------------------------------------------------


async def test_watcher_swaps_the_config_and_calls_back(server: JetStreamServer, live: LiveConfig) -> None:
    calls: list[tuple[str, str, list[str]]] = []

    def sync_cb(config: GatewayConfig, version: str) -> None:
        # called after the swap: current is already the new config
        calls.append(("sync", version, list(live.current.models)))

    async def async_cb(config: GatewayConfig, version: str) -> None:
        await asyncio.sleep(0)
        calls.append(("async", version, list(config.models)))

    def failing_cb(config: GatewayConfig, version: str) -> None:
        raise RuntimeError("boom")

    live.on_change(sync_cb)
    live.on_change(failing_cb)
    live.on_change(async_cb)
    old = live.version
    version = await publish(server.js, config_text("from-kv", "added"), "apply:x@y")
    await eventually(lambda: len(calls) == 2, what="both callbacks called")
    assert live.version == version
    assert sorted(live.current.models) == ["added", "from-kv"]
    assert calls == [("sync", version, ["added", "from-kv"]), ("async", version, ["added", "from-kv"])]

    events = []

    def recorded() -> bool:
        return any(e.to_state == version for e in events)

    async def refresh() -> None:
        events[:] = await activations(server)

    while not recorded():  # the activation is recorded after the callbacks
        await refresh()
        await asyncio.sleep(0.01)
    activated = [e for e in events if e.to_state == version][0]
    assert activated.kind == "config" and activated.subject == version and activated.from_state == old
    assert activated.source == f"tester-{os.getpid()}" and activated.config_version == version
    assert "failing_cb" in activated.attrs.callback_errors[0]
    initial = [e for e in events if e.to_state == old][0]
    assert initial.attrs == ControlAttrs(initial=True) and initial.from_state == ""


async def test_republishing_the_same_version_does_not_call_back(server: JetStreamServer, live: LiveConfig) -> None:
    calls: list[str] = []
    live.on_change(lambda _c, v: calls.append(v))
    await publish(server.js, KV_TEXT, "apply:again")  # same text, same version
    new = await publish(server.js, config_text("x"), "apply:x@y")
    await eventually(lambda: live.version == new)
    assert calls == [new]


async def test_history_by_version(server: JetStreamServer, live: LiveConfig) -> None:
    first = live.version
    versions = [first]
    for i in range(LiveConfig.HISTORY + 2):
        version = await publish(server.js, config_text(f"alias-{i}"), "apply:x@y")
        versions.append(version)
        # each one taken before the next (otherwise newer ones coalesce: still all in the history)
        await eventually(lambda v=version: live.version == v)  # type: ignore[misc]
    assert live.get(versions[-1]) is live.current
    assert list(live.get(versions[-2]).models) == [f"alias-{LiveConfig.HISTORY}"]  # type: ignore[union-attr]
    kept = [v for v in versions if live.get(v) is not None]
    assert kept == versions[-LiveConfig.HISTORY:]
    assert live.get(first) is None and live.get("unknown") is None


async def test_coalesced_updates_are_all_in_the_history(server: JetStreamServer, live: LiveConfig) -> None:
    gate = asyncio.Event()

    async def slow(_config: GatewayConfig, _version: str) -> None:
        await gate.wait()

    live.on_change(slow)
    versions = [await publish(server.js, config_text(f"burst-{i}"), "apply:x@y")
                for i in range(4)]
    await eventually(lambda: all(live.get(v) is not None for v in versions), what="every version seen")
    gate.set()
    await eventually(lambda: live.version == versions[-1], what="the newest activated")


async def test_wait_for_a_version_not_seen_yet(server: JetStreamServer, live: LiveConfig) -> None:
    text = config_text("later")
    waiter = asyncio.create_task(live.wait_for(version_of(text), timeout_s=10))
    await asyncio.sleep(0)
    assert not waiter.done()
    await publish(server.js, text, "apply:x@y")
    config = await waiter
    assert config is not None and list(config.models) == ["later"]
    assert await live.wait_for("never-published", timeout_s=0.05) is None
    assert await live.wait_for(live.version, timeout_s=0) is live.current


async def test_invalid_kv_values_are_ignored(server: JetStreamServer, live: LiveConfig,
                                             caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    live.on_change(lambda _c, v: seen.append(v))
    before = live.version
    kv = await config_bucket(server.js)
    bad = config_text("bad", models={"bad": {"targets": [{"provider": "nope", "model": "x"}]}})
    with caplog.at_level(logging.WARNING, logger="gateway.config"):
        await kv.put(subjects.CONFIG_KEY, ActiveConfig(version_of(bad), bad, "sneaky", 1.0).to_json())
        await kv.put(subjects.CONFIG_KEY, b"{not json")
        await kv.delete(subjects.CONFIG_KEY)
        # the watcher still works
        good = await publish(server.js, config_text("good"), "apply:x@y")
        await eventually(lambda: live.version == good)
    assert seen == [good]  # the invalid ones never became current
    assert live.get(version_of(bad)) is None
    assert before != good
    assert "models.bad.targets.0.provider" in caplog.text and "unknown provider 'nope'" in caplog.text
    assert "not JSON" in caplog.text and "keeping version" in caplog.text


async def test_resync_catches_up_without_the_watcher(server: JetStreamServer, config_file: Path) -> None:
    lc = LiveConfig(config_file, "tester", check=check_config, resync_s=0.05)
    await lc.start(server.url)
    try:
        lc._tasks[0].cancel()  # as if the watch had silently died
        version = await publish(server.js, config_text("resynced"), "apply:x@y")
        await eventually(lambda: lc.version == version, what="taken through the resync")
    finally:
        await lc.stop()


async def test_restart_preloads_recent_versions(server: JetStreamServer, config_file: Path) -> None:
    old = await publish(server.js, config_text("old"), "apply:x@y")
    new = await publish(server.js, config_text("new"), "apply:x@y")
    lc = LiveConfig(config_file, "tester", check=check_config)
    await lc.start(server.url)
    try:
        assert lc.version == new
        assert list(lc.get(old).models) == ["old"]  # type: ignore[union-attr]
    finally:
        await lc.stop()


def test_static() -> None:
    config = GatewayConfig()
    lc = LiveConfig.static(config, "v1")
    assert (lc.current, lc.version, lc.get("v1")) == (config, "v1", config)
