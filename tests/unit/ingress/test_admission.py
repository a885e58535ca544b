"""Admission: refuse at once what the chain cannot serve (no replica of a stage, overload)."""

from __future__ import annotations

from typing import Any

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from ingress.admission import ChainProbe, Overload


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_passing_queue_is_not_overload() -> None:
    clock = Clock()
    overload = Overload(target_ms=100, interval_s=0.5, clock=clock)
    for ms in (5, 300, 2_000):  # some requests queued long, but the fastest went straight through
        overload.observe(ms)
    clock.now += 0.6
    assert overload.refusal(pending=10) is None and not overload.shedding


def test_a_standing_queue_sheds_until_it_drains() -> None:
    clock = Clock()
    overload = Overload(target_ms=100, interval_s=0.5, clock=clock)
    for ms in (150, 400, 900):  # even the fastest waited over the target
        overload.observe(ms)
    clock.now += 0.6
    assert overload.refusal(pending=10) is None  # one request per interval goes in, to measure
    refused = overload.refusal(pending=10)
    assert refused is not None and refused.status_code == 503 and refused.retry_after_s == 1.0
    assert refused.code == "gateway_overloaded"
    clock.now += 0.6  # an interval with no completion keeps the verdict
    assert overload.refusal(pending=10) is None and overload.refusal(pending=10) is not None
    overload.observe(20)  # the probe went straight through: the queue drained
    clock.now += 0.6
    assert overload.refusal(pending=10) is None and overload.refusal(pending=10) is None
    assert overload.refused == 2


def test_too_many_waiting_is_refused_whatever_the_latency() -> None:
    overload = Overload(max_pending=3)
    assert overload.refusal(pending=2) is None
    refused = overload.refusal(pending=3)
    assert refused is not None and "3 requests are already waiting" in refused.message


class PingNats:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.is_connected = True

    async def request(self, subject: str, data: bytes, timeout: float) -> Any:
        answer = self.answers.get(subject.rsplit(".", 1)[-1])
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_a_stage_without_replica_is_missing_a_slow_one_is_not() -> None:
    nc = PingNats({"redaction": object(), "policy": NoRespondersError(), "routing": NatsTimeoutError()})
    probe = ChainProbe(lambda: nc, ["redaction", "policy", "routing"])  # type: ignore[arg-type, return-value]
    assert await probe.probe() == ["policy"]
    refused = await probe.refusal()
    assert refused is not None and refused.code == "chain_unavailable" and "policy" in refused.message
    nc.answers["policy"] = object()
    assert await probe.fresh(max_age_s=0.0) == [] and probe.ready and await probe.refusal() is None


async def test_a_missing_stage_is_asked_again_before_a_refusal() -> None:
    nc = PingNats({"redaction": NoRespondersError()})
    probe = ChainProbe(lambda: nc, ["redaction"])  # type: ignore[arg-type, return-value]
    await probe.probe()
    nc.answers["redaction"] = object()  # re-subscribed right after a broker restart
    probe.checked_at -= 1.0
    assert await probe.refusal() is None


async def test_a_disconnected_ingress_sees_no_stage() -> None:
    nc = PingNats({})
    nc.is_connected = False
    probe = ChainProbe(lambda: nc, ["redaction", "policy"])  # type: ignore[arg-type, return-value]
    assert await probe.probe() == ["redaction", "policy"]


def test_one_late_wake_up_is_not_overload() -> None:
    clock = Clock()
    overload = Overload(target_ms=1000, clock=clock)
    overload.report(pid=7, lag_ms=900)  # a garbage collection
    overload.report(pid=7, lag_ms=20)
    overload.report(pid=7, lag_ms=30)
    assert overload.refusal(pending=1) is None
    for _ in range(3):  # a standing queue: every report over a quarter of the target
        overload.report(pid=7, lag_ms=400)
    refused = overload.refusal(pending=1)
    assert refused is not None and "400 ms of work queued" in refused.message
    clock.now += 1.0  # the process went quiet: its queue drained
    assert overload.refusal(pending=1) is None


def test_one_slow_request_alone_is_not_a_queue() -> None:
    """A single large request (10,000 messages) slower than the target on an idle gateway must not make
    ingress refuse the next ones; two slow completions in an interval do."""
    clock = Clock()
    overload = Overload(target_ms=100, interval_s=0.5, clock=clock)
    overload.observe(2_500)
    clock.now += 0.6
    assert overload.refusal(pending=0) is None and overload.refusal(pending=0) is None
    assert not overload.shedding
    overload.observe(2_500)
    overload.observe(300)
    clock.now += 0.6
    assert overload.refusal(pending=0) is None and overload.refusal(pending=0) is not None
