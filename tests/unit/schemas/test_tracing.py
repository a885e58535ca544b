"""W3C trace context: a caller's traceparent is joined, anything else starts the request's own trace."""

from __future__ import annotations

import pytest

from schemas.tracing import attempt_traceparent, parse_traceparent, root_traceparent, span_id, trace_of

RID = "01a2433b-d261-720b-ae43-235e20528c83"
CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_read() -> None:
    assert parse_traceparent(CALLER) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)
    assert parse_traceparent(CALLER.upper()) is not None


@pytest.mark.parametrize("value", [None, "", "garbage", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                   "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                                   "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                                   "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"])
def test_anything_else_is_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_without_one_the_trace_is_the_request_id() -> None:
    assert trace_of(RID, "") == ("01a2433bd261720bae43235e20528c83", None, 1)
    assert trace_of(RID, CALLER) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)


def test_span_ids_are_stable_and_distinct() -> None:
    names = ["gateway", "stage.redaction", "stage.provider", "attempt.0", "attempt.1"]
    ids = [span_id(RID, n) for n in names]
    assert ids == [span_id(RID, n) for n in names] and len(set(ids)) == len(ids)
    assert all(len(i) == 16 and int(i, 16) for i in ids)
    assert root_traceparent(RID, CALLER) == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{span_id(RID, 'gateway')}-01"


def test_a_provider_call_is_told_its_own_span_as_parent() -> None:
    rid = "0190a0e2-7c3b-7d4e-8f00-123456789abc"
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    sent = attempt_traceparent(rid, caller, 1, exported=True)
    assert sent == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{span_id(rid, 'attempt.1')}-01"
    assert attempt_traceparent(rid, "", 0, exported=True) == f"00-{rid.replace('-', '')}-{span_id(rid, 'attempt.0')}-01"
    assert attempt_traceparent(rid, caller[:-2] + "00", 0, exported=True) is None  # the caller does not sample
    # traces not exported: the caller's context passes through as it came, or nothing is sent
    assert attempt_traceparent(rid, caller.upper().replace("00-", "00-", 1), 1, exported=False) == caller
    assert attempt_traceparent(rid, "", 0, exported=False) is None
    assert attempt_traceparent(rid, "garbage", 0, exported=False) is None
