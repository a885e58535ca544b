"""The sink's decoding of GW_EVENTS messages into the ``Event`` union."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from schemas import subjects
from schemas.events import ControlAttrs, ControlEvent, EventType, RequestCompleted, StageEvent
from schemas.ids import uuid7
from schemas.wire import encode
from workers.sink import decode_events


@dataclass
class FakeMsg:
    subject: str
    data: bytes
    headers: dict[str, str] | None = None


def test_decode_every_event_kind_and_drop_the_unreadable(caplog: pytest.LogCaptureFixture) -> None:
    control = ControlEvent(event_id=uuid7(), ts=1.0, kind="breaker", subject="openai/gpt-4o", from_state="closed",
                           to_state="open", reason="5 failures", source="routing-1", config_version="v3",
                           attrs=ControlAttrs(opens=5))
    stage = StageEvent(event_id=uuid7(), request_id=uuid7(), ts=1.0, stage="policy", type=EventType.REQUEST_AUTHORIZED)
    done = RequestCompleted(event_id=uuid7(), request_id=uuid7(), ts=1.0, finished_at=2.0, stage="provider",
                            status_code=200, tags={"team": "ml"}, experiment="e", variant="b",
                            config_version="v3", route_path="0/1")
    messages = [
        FakeMsg(subjects.EVT_CONTROL, encode(control)),
        FakeMsg(subjects.event_subject("policy"), encode(stage)),
        FakeMsg(subjects.event_subject("provider"), encode(done)),
        FakeMsg(subjects.EVT_CONTROL, b'{"event": "control", "kind": "nonsense"}'),
        FakeMsg(subjects.event_subject("ingress"), b'{"request_body": "mail jane.doe@example.com"',
                {"Nats-Msg-Id": "r-7"}),
    ]
    with caplog.at_level(logging.ERROR, logger="gateway.sink"):
        events = decode_events(messages)  # type: ignore[arg-type]
    assert events == [control, stage, done]
    assert isinstance(events[0], ControlEvent) and isinstance(events[2], RequestCompleted)
    assert "dropping an undecodable event on gw.evt.control" in caplog.text
    assert "gw.evt.ingress (44 bytes, request r-7)" in caplog.text
    assert "jane.doe" not in caplog.text  # never the payload: logs are at rest under the data dir
