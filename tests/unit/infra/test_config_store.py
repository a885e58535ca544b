"""The active config in the GW_CONFIG bucket, against a real nats-server: publish, fetch, refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import yaml
from nats.js import JetStreamContext

from infra.bootstrap import check_config
from infra.config import ConfigError, version_of
from infra.config_store import ActiveConfig, config_bucket, fetch_active, publish_config
from schemas import subjects
from schemas.events import ControlAttrs, ControlEvent
from schemas.wire import decode
from tests.support.jetstream import JetStreamServer, audit_published, jetstream_server

pytestmark = pytest.mark.server

GOOD = yaml.safe_dump({
    "providers": {"p1": {"type": "openai", "base_url": "http://p1/v1"}},
    "models": {"m": {"targets": [{"provider": "p1", "model": "m-1"}]}},
})
OTHER = GOOD + "limits: {max_body_bytes: 2048}\n"
BAD = yaml.safe_dump({
    "providers": {"p1": {"type": "openai", "base_url": "http://p1/v1"}},
    "models": {"m": {"targets": [{"provider": "nope", "model": "m-1"}]}},
})


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with jetstream_server(tmp_path / "nats") as srv:
        yield srv


async def control_events(js: JetStreamContext) -> list[ControlEvent]:
    info = await js.stream_info(subjects.STREAM_EVENTS)
    events = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages == 0:
            break
        msg = await js.get_msg(subjects.STREAM_EVENTS, seq)
        if msg.subject == subjects.EVT_CONTROL and msg.data:
            events.append(decode(msg.data, ControlEvent))
    return events


async def test_nothing_published_yet(server: JetStreamServer) -> None:
    assert await fetch_active(server.js) is None


async def test_no_bucket_is_no_config(tmp_path: Path) -> None:
    async with jetstream_server(tmp_path / "bare", declare=False) as srv:
        assert await fetch_active(srv.js) is None


async def test_publish_then_fetch(server: JetStreamServer) -> None:
    version = await publish_config(server.js, GOOD, "file:/etc/gw.yaml", check=check_config, identity="supervisor")
    assert version == version_of(GOOD) and len(version) == 12
    active = await fetch_active(server.js)
    assert active is not None
    assert (active.version, active.yaml, active.source) == (version, GOOD, "file:/etc/gw.yaml")
    assert active.applied_at > 0 and active.revision >= 1
    assert active.parse(check_config).models["m"].targets is not None

    second = await publish_config(server.js, OTHER, "apply:nats:admin", check=check_config, identity="admin",
                                  attrs=ControlAttrs(file="/tmp/x.yaml"))
    active = await fetch_active(server.js)
    assert active is not None and active.version == second != version
    assert active.parse(check_config).limits.max_body_bytes == 2048

    events = await control_events(server.js)
    assert [(e.kind, e.reason, e.from_state, e.to_state, e.subject, e.config_version, e.source) for e in events] == [
        ("config", "applied", "", version, version, version, "file:/etc/gw.yaml"),
        ("config", "applied", version, second, second, second, "apply:nats:admin"),
    ]
    assert events[1].attrs == ControlAttrs(file="/tmp/x.yaml")


async def test_invalid_config_is_refused_naming_the_path_and_not_written(server: JetStreamServer) -> None:
    version = await publish_config(server.js, GOOD, "file:/etc/gw.yaml", check=check_config, identity="supervisor")
    with pytest.raises(ConfigError) as raised:
        await publish_config(server.js, BAD, "apply:nats:admin", check=check_config, identity="admin",
                             label="/home/ann/bad.yaml")
    message = str(raised.value)
    assert message.startswith("/home/ann/bad.yaml: invalid config")
    assert "models.m.targets.0.provider" in message and "unknown provider 'nope'" in message
    with pytest.raises(ConfigError, match=r"^file:/x\.yaml: not valid YAML"):
        await publish_config(server.js, "models: [unclosed", "file:/x.yaml", check=check_config, identity="supervisor")
    active = await fetch_active(server.js)
    assert active is not None and active.version == version  # nothing written
    assert len(await control_events(server.js)) == 1  # and nothing recorded


@pytest.mark.parametrize(("value", "error"), [
    (b"not json", "not JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (orjson.dumps({"version": "x"}), "expected string 'yaml'"),
    (orjson.dumps({"version": "000000000000", "yaml": GOOD, "source": "s", "applied_at": 1.0}),
     "is not the hash of its yaml"),
])
async def test_a_value_that_is_not_a_config_value(server: JetStreamServer, value: bytes, error: str) -> None:
    kv = await config_bucket(server.js)
    await kv.put(subjects.CONFIG_KEY, value)
    with pytest.raises(ConfigError, match=error):
        await fetch_active(server.js)
    # publishing over it works (and records no previous version)
    version = await publish_config(server.js, GOOD, "file:/etc/gw.yaml", check=check_config, identity="supervisor")
    events = await control_events(server.js)
    assert events[-1].from_state == "" and events[-1].to_state == version


def test_active_config_round_trip() -> None:
    value = ActiveConfig(version=version_of(GOOD), yaml=GOOD, source="file:/a", applied_at=12.5)
    again = ActiveConfig.from_json(value.to_json(), revision=7)
    assert again == ActiveConfig(version=value.version, yaml=GOOD, source="file:/a", applied_at=12.5, revision=7)
    assert again.label == f"{subjects.BUCKET_CONFIG}/{subjects.CONFIG_KEY} revision 7 (file:/a)"


def test_invalid_stored_yaml_names_where_it_is_stored() -> None:
    value = ActiveConfig(version=version_of(BAD), yaml=BAD, source="apply:x@y", applied_at=1.0, revision=3)
    with pytest.raises(ConfigError) as raised:
        value.parse(check_config)
    assert str(raised.value).startswith("GW_CONFIG/active revision 3 (apply:x@y): invalid config")
    assert "models.m.targets.0.provider" in str(raised.value)


# -- the CLI: gateway config apply / show -------------------------------------------------------------


def test_cli_apply_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    import nats

    from infra import jetstream
    from infra.nats_server import start_nats
    from infra.operator.cli import main
    from infra.settings import Settings

    server = start_nats(tmp_path / "nats")
    try:
        async def declare() -> None:
            nc = await nats.connect(server.url)
            await jetstream.declare(nc.jetstream(), Settings())
            await nc.close()

        asyncio.run(declare())
        assert main(["config", "show", "--nats-url", server.url]) == 1
        assert "no config published yet" in capsys.readouterr().err

        good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
        good.write_text(GOOD)
        bad.write_text(BAD)
        assert main(["config", "apply", str(bad), "--nats-url", server.url]) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and "models.m.targets.0.provider" in err

        assert main(["config", "apply", str(good), "--nats-url", server.url]) == 0
        assert capsys.readouterr().out.strip() == f"applied config {version_of(GOOD)} from {good}"
        assert main(["config", "show", "--yaml", "--nats-url", server.url]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"version {version_of(GOOD)}\nsource apply:") and out.endswith(GOOD)
    finally:
        server.stop()


def test_cli_apply_without_a_gateway(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from infra.nats_server import free_port
    from infra.operator.cli import main

    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert main(["config", "apply", str(good), "--nats-url", f"nats://127.0.0.1:{free_port()}"]) == 1
    assert "cannot reach the gateway's NATS" in capsys.readouterr().err
    assert main(["config", "apply", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


async def test_each_new_version_is_audited_by_name_only(server: JetStreamServer) -> None:
    first = await publish_config(server.js, GOOD, "file:/etc/gw.yaml", check=check_config, identity="supervisor")
    second = await publish_config(server.js, OTHER, "apply:nats:admin", check=check_config, identity="admin",
                                  attrs=ControlAttrs(file="/tmp/x.yaml"), reported_by="ann@host")
    # same version: no change
    await publish_config(server.js, OTHER, "file:/etc/gw.yaml", check=check_config, identity="supervisor")
    with pytest.raises(ConfigError):  # refused: nothing audited
        await publish_config(server.js, BAD, "apply:nats:admin", check=check_config, identity="admin")
    published = await audit_published(server.js)
    entries = [e for _, e in published]
    # each on its publisher's subject, claiming that identity (the chain writer records the subject's)
    assert [(s, e.kind, e.action, e.subject, e.actor) for s, e in published] == [
        ("gw.audit.by.supervisor", "config", "applied", first, "nats:supervisor"),
        ("gw.audit.by.admin", "config", "applied", second, "nats:admin")]
    assert entries[0].detail["models"] == {"added": ["m"], "removed": [], "changed": []}
    assert entries[0].detail["source"] == "file:/etc/gw.yaml" and "reported_by" not in entries[0].detail
    assert entries[1].detail == {"from_version": first, "to_version": second, "file": "/tmp/x.yaml",
                                 "source": "apply:nats:admin", "reported_by": "ann@host",
                                 "sections_changed": ["limits"]}
