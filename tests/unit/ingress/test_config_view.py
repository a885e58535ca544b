"""Ingress follows the live config: keys and model lists per version, a request keeps its view."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingress.app import Ingress
from ingress.asgi import Message
from ingress.config_view import ConfigView, StaticConfig, ViewCache
from schemas.config import GatewayConfig, hash_api_key
from schemas.sealing import new_key


def config(*aliases: str, keys: tuple[str, ...] = ("sk-a",), max_body_bytes: int = 4096) -> GatewayConfig:
    return GatewayConfig.model_validate({
        "keys": [{"id": k, "key_sha256": hash_api_key(k), "tenant": "t"} for k in keys],
        "providers": {"p": {"type": "openai", "base_url": "http://p/v1"}},
        "models": {a: {"targets": [{"provider": "p", "model": a}]} for a in aliases},
        "limits": {"max_body_bytes": max_body_bytes},
    })


class Source:
    """A live source whose config the test swaps, as LiveConfig does on a new version."""

    def __init__(self, cfg: GatewayConfig, version: str) -> None:
        self.current, self.version = cfg, version
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


async def get(app: Ingress, path: str, key: str) -> tuple[int, Any]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path,
             "headers": [(b"authorization", f"Bearer {key}".encode())]}
    await app(scope, receive, send)
    return sent[0]["status"], orjson.loads(sent[1]["body"])


def test_view_is_rebuilt_once_per_version() -> None:
    source = Source(config("m1"), "v1")
    cache = ViewCache(source)
    first = cache.get()
    assert cache.get() is first
    assert [m["id"] for m in first.models_payload["data"]] == ["m1"]
    source.current, source.version = config("m2", "m1"), "v2"
    second = cache.get()
    assert second is not first and cache.views.current.version == "v2"
    assert [m["id"] for m in second.models_payload["data"]] == ["m1", "m2"]
    assert second.anthropic_models_payload["first_id"] == "m1" and second.anthropic_models_payload["last_id"] == "m2"
    assert first.config.models.keys() == {"m1"}  # a request holding the old view keeps it


def test_empty_models() -> None:
    view = ConfigView.of(GatewayConfig())
    assert view.models_payload["data"] == [] and view.anthropic_models_payload["first_id"] is None


def test_not_opened_yet() -> None:
    with pytest.raises(RuntimeError, match="not opened"):
        ViewCache().get()
    with pytest.raises(ValueError, match="needs a config"):
        Ingress(None, "nats://x", envelope_key=new_key())


async def test_ingress_follows_the_live_config() -> None:
    source = Source(config("m1"), "v1")
    app = Ingress(source, "nats://unused", envelope_key=new_key())
    status, _ = await get(app, "/v1/models", "sk-b")
    assert status == 401
    source.current, source.version = config("m1", "m2", keys=("sk-a", "sk-b"), max_body_bytes=2048), "v2"
    status, body = await get(app, "/v1/models", "sk-b")
    assert status == 200 and [m["id"] for m in body["data"]] == ["m1", "m2"]
    assert (await get(app, "/v1/models/m2", "sk-b"))[0] == 200
    assert app.config.limits.max_body_bytes == 2048 and hash_api_key("sk-b") in app.keys
    source.current, source.version = config("m1"), "v3"  # key and model removed
    assert (await get(app, "/v1/models", "sk-b"))[0] == 401
    assert (await get(app, "/v1/models/m2", "sk-a"))[0] == 404


async def test_a_fixed_config_still_works() -> None:
    app = Ingress(config("m1"), "nats://unused", envelope_key=new_key())
    assert (await get(app, "/v1/models", "sk-a"))[0] == 200
    assert isinstance(app.views.source, StaticConfig)


async def test_an_opened_source_is_stopped_at_shutdown() -> None:
    source = Source(config("m1"), "v1")

    async def open_config() -> Source:
        return source

    app = Ingress(None, "nats://unused", open_config=open_config, envelope_key=new_key())
    app.views.source = await open_config()  # what startup does first (then it connects to NATS)
    assert (await get(app, "/v1/models", "sk-a"))[0] == 200
    await app.shutdown()
    assert source.stopped


def test_models_listed_are_those_the_key_may_use() -> None:
    from schemas.governance import VirtualKey

    view = ConfigView.of(config("m1", "m2", "m3"))
    everything = VirtualKey(id="k", tenant="t")
    assert view.models_for(everything, anthropic=False) is view.models_payload
    some = VirtualKey(id="k", tenant="t", models=["m3", "m1", "gone"])
    assert [m["id"] for m in view.models_for(some, anthropic=False)["data"]] == ["m1", "m3"]
    anthropic = view.models_for(some, anthropic=True)
    assert [m["id"] for m in anthropic["data"]] == ["m1", "m3"] and anthropic["last_id"] == "m3"
    assert view.models_for(VirtualKey(id="k", tenant="t", models=["x"]), anthropic=True)["first_id"] is None
