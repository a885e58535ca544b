"""The subject helpers: audit subjects and the identities they name, and the JetStream subjects of permissions."""

from __future__ import annotations

import pytest

from schemas import subjects


def test_an_identity_publishes_on_its_own_subject_under_the_streams_wildcard() -> None:
    assert subjects.audit_subject("op-alice") == "gw.audit.by.op-alice"
    assert subjects.audit_subject("admin").startswith(subjects.AUDIT_ALL.removesuffix(">"))
    assert subjects.AUDIT_SUBJECTS == ("gw.audit", "gw.audit.>")


@pytest.mark.parametrize(("subject", "identity"), [
    ("gw.audit.by.op-alice", "op-alice"), ("gw.audit.by.ingress", "ingress"), ("gw.audit", None),
    ("gw.audit.by", None), ("gw.audit.by.", None), ("gw.audit.by.a.b", None), ("gw.audit.x", None),
    ("gw.evt.by.admin", None),
])
def test_the_identity_a_subject_names(subject: str, identity: str | None) -> None:
    assert subjects.audit_identity(subject) == identity
    if identity is not None:
        assert subjects.audit_subject(identity) == subject


def test_jetstream_subjects_the_permissions_are_built_from() -> None:
    s = subjects
    assert s.inbox_prefix("sink") == "_INBOX_sink"
    assert s.kv_stream(s.BUCKET_CONFIG) == "KV_GW_CONFIG"
    assert s.kv_keys(s.BUCKET_KEYS) == "$KV.GW_KEYS.>"
    assert s.kv_key(s.BUCKET_CONFIG, s.CONFIG_KEY) == "$KV.GW_CONFIG.active"
    assert s.js_stream_api("INFO", "GW_REQ") == "$JS.API.STREAM.INFO.GW_REQ"
    assert s.js_consumer_api("MSG.NEXT", "GW_REQ", "redaction") == "$JS.API.CONSUMER.MSG.NEXT.GW_REQ.redaction"
    assert s.js_ack("GW_EVENTS", "sink") == "$JS.ACK.GW_EVENTS.sink.>"
    assert s.js_flow_control("KV_GW_CONFIG") == "$JS.FC.KV_GW_CONFIG.>"


def test_each_lane_has_its_own_hop_subjects() -> None:
    s = subjects
    assert s.in_lane(s.REQ_POLICY, "interactive") == s.REQ_POLICY  # what every earlier version used
    hops = (s.REQ_POLICY, s.REQ_ROUTE, s.REQ_CALL, s.RESP_FILTER, s.RESP_FILTER_OPEN, s.LOAD_REPORT)
    batch = {s.in_lane(hop, "batch") for hop in hops}
    assert len(batch) == len(hops) and not batch & set(hops)  # a batch line never reaches an interactive stage
    assert s.ping_subject("policy") == "gw.ping.policy"
    assert s.ping_subject("policy", "batch") == "gw.ping.policy.batch"  # ingress's gw.ping.* never matches it
