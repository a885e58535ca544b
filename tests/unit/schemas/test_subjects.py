"""The subject helpers NATS permissions are built from."""

from __future__ import annotations

from schemas import subjects as s


def test_audit_subjects_name_the_identity_under_the_streams_wildcard() -> None:
    assert s.audit_subject("admin") == "gw.audit.by.admin"
    assert s.AUDIT_ALL == "gw.audit.>" and s.audit_subject("x").startswith(s.AUDIT_ALL[:-1])


def test_jetstream_subjects() -> None:
    assert s.inbox_prefix("sink") == "_INBOX_sink"
    assert s.kv_stream(s.BUCKET_CONFIG) == "KV_GW_CONFIG"
    assert s.kv_keys(s.BUCKET_KEYS) == "$KV.GW_KEYS.>"
    assert s.kv_key(s.BUCKET_CONFIG, s.CONFIG_KEY) == "$KV.GW_CONFIG.active"
    assert s.js_stream_api("INFO", "GW_REQ") == "$JS.API.STREAM.INFO.GW_REQ"
    assert s.js_consumer_api("MSG.NEXT", "GW_REQ", "redaction") == "$JS.API.CONSUMER.MSG.NEXT.GW_REQ.redaction"
    assert s.js_ack("GW_EVENTS", "sink") == "$JS.ACK.GW_EVENTS.sink.>"
    assert s.js_flow_control("KV_GW_CONFIG") == "$JS.FC.KV_GW_CONFIG.>"
