"""``Derived``: one value per config version, built once; rebuilt off the loop on a new version (or not
at all when its inputs did not change); the old value kept when a build fails or loses a race."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest

from infra.derived import Built, Derived
from schemas.config import GatewayConfig


def config(threshold: float = 0.4, max_body_bytes: int = 1_048_576) -> GatewayConfig:
    return GatewayConfig.model_validate({"redaction": {"score_threshold": threshold},
                                         "limits": {"max_body_bytes": max_body_bytes}})


class Recorder:
    """A build that records what it built from, and on which thread."""

    def __init__(self) -> None:
        self.built: list[float] = []
        self.threads: list[str] = []

    def __call__(self, cfg: GatewayConfig) -> str:
        self.built.append(cfg.redaction.score_threshold)
        self.threads.append(threading.current_thread().name)
        if cfg.redaction.score_threshold > 0.9:
            raise ValueError("cannot build that")
        return f"scanner@{cfg.redaction.score_threshold}"


class Live:
    """What ``follow`` needs of LiveConfig: a version, its config, change callbacks."""

    def __init__(self, cfg: GatewayConfig, version: str) -> None:
        self.current, self.version = cfg, version
        self.callbacks: list[Callable[[GatewayConfig, str], Awaitable[None] | None]] = []

    def on_change(self, callback: Callable[[GatewayConfig, str], Awaitable[None] | None]) -> None:
        self.callbacks.append(callback)

    async def activate(self, cfg: GatewayConfig, version: str) -> None:
        self.current, self.version = cfg, version
        for callback in self.callbacks:
            result = callback(cfg, version)
            if result is not None:
                await result


def test_get_builds_once_per_version_and_keeps_only_the_last() -> None:
    build = Recorder()
    derived = Derived(build)
    assert derived.built is None
    with pytest.raises(RuntimeError, match="nothing derived yet"):
        _ = derived.current
    first = config(0.4)
    assert derived.get("v1", first) == "scanner@0.4"
    assert derived.get("v1", first) == "scanner@0.4" and build.built == [0.4]  # built once
    assert derived.current == Built("v1", first, "scanner@0.4")
    assert derived.get("v2", config(0.5)) == "scanner@0.5"
    assert derived.get("v1", first) == "scanner@0.4" and build.built == [0.4, 0.5, 0.4]  # v1 was dropped


def test_without_inputs_every_version_builds_even_an_equal_config() -> None:
    build = Recorder()
    derived = Derived(build)
    derived.get("v1", config())
    derived.get("v2", config())
    assert build.built == [0.4, 0.4]


def test_equal_inputs_reuse_the_value_with_the_new_config() -> None:
    build = Recorder()
    derived = Derived(build, inputs=lambda c: c.redaction.score_threshold)
    value = derived.get("v1", config(0.4))
    other_limits = config(0.4, max_body_bytes=4096)
    assert derived.get("v2", other_limits) is value and build.built == [0.4]
    assert derived.current == Built("v2", other_limits, value)


def test_a_failed_get_keeps_the_old_value_and_tries_again() -> None:
    build = Recorder()
    derived = Derived(build)
    derived.get("v1", config(0.4))
    with pytest.raises(ValueError, match="cannot build"):
        derived.get("v2", config(0.95))
    assert derived.current.version == "v1"
    with pytest.raises(ValueError, match="cannot build"):
        derived.get("v2", config(0.95))
    assert build.built == [0.4, 0.95, 0.95]


async def test_update_rebuilds_in_a_thread_only_when_its_inputs_change() -> None:
    build = Recorder()
    base = config(0.4)
    derived = Derived(build, inputs=lambda c: c.redaction.score_threshold)
    derived.get("v1", base)
    assert derived.current == Built("v1", base, "scanner@0.4") and build.built == [0.4]

    other_limits = config(0.4, max_body_bytes=4096)
    await derived.update(other_limits, "v2")
    assert derived.current == Built("v2", other_limits, "scanner@0.4") and build.built == [0.4]  # no rebuild

    stricter = config(0.7)
    await derived.update(stricter, "v3")
    assert derived.current == Built("v3", stricter, "scanner@0.7") and build.built == [0.4, 0.7]
    assert build.threads[-1] != threading.current_thread().name  # built off the event loop's thread

    await derived.update(stricter, "v3")  # the version it holds: nothing to do
    assert build.built == [0.4, 0.7]

    with pytest.raises(ValueError, match="cannot build"):
        await derived.update(config(0.95), "v4")
    assert derived.current == Built("v3", stricter, "scanner@0.7")  # the old one stays


async def test_until_a_thread_build_is_ready_the_previous_version_serves() -> None:
    release = threading.Event()

    def slow(cfg: GatewayConfig) -> str:
        if cfg.redaction.score_threshold != 0.4:
            release.wait(5)
        return f"scanner@{cfg.redaction.score_threshold}"

    derived = Derived(slow)
    derived.get("v1", config(0.4))
    update = asyncio.create_task(derived.update(config(0.7), "v2"))
    await asyncio.sleep(0.05)
    held = derived.current  # what a request starting now takes, and keeps
    assert (held.version, held.value) == ("v1", "scanner@0.4")
    release.set()
    await update
    assert (derived.current.version, derived.current.value) == ("v2", "scanner@0.7")
    assert held.value == "scanner@0.4"


async def test_a_thread_build_that_lost_the_race_to_get_is_dropped() -> None:
    release = threading.Event()
    builds: list[str] = []

    def build(cfg: GatewayConfig) -> object:
        if threading.current_thread() is not threading.main_thread():
            release.wait(5)
        value = object()
        builds.append(threading.current_thread().name)
        return value

    derived = Derived(build)
    derived.get("v1", config())
    update = asyncio.create_task(derived.update(config(0.7), "v2"))
    await asyncio.sleep(0.05)
    inline = derived.get("v2", config(0.7))  # a request asked for v2 first: built on the spot
    release.set()
    await update
    assert derived.current.value is inline and len(builds) == 3


async def test_follow_builds_now_and_on_every_new_version() -> None:
    build = Recorder()
    live = Live(config(0.4), "v1")
    derived = Derived(build).follow(live)
    assert derived.current.version == "v1" and build.built == [0.4]
    await live.activate(config(0.6), "v2")
    assert derived.current.version == "v2" and derived.current.value == "scanner@0.6"
    assert derived.get(live.version, live.current) == "scanner@0.6" and build.built == [0.4, 0.6]
