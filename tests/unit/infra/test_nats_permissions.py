"""The permission table: each identity may publish and subscribe only where the chain needs it. The
server's enforcement is proven in ``tests/integration/test_nats_permissions.py``; here, the table itself,
matched the way nats-server matches subjects (``*`` one token, ``>`` the rest)."""

from __future__ import annotations

import re

import pytest

from infra.nats_permissions import (
    IDENTITIES,
    STAGE_ROLES,
    WORKER_IDENTITIES,
    authorization_block,
    is_operator,
    permissions,
)
from schemas import subjects as s


def matches(pattern: str, subject: str) -> bool:
    """nats-server's subject matching: does ``pattern`` (with wildcards) cover ``subject``?"""
    p, t = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(t) > i
        if i >= len(t) or (token != "*" and token != t[i]):
            return False
    return len(p) == len(t)


def may_publish(identity: str, subject: str) -> bool:
    return any(matches(p, subject) for p in permissions(identity).publish)


def may_subscribe(identity: str, subject: str) -> bool:
    return any(matches(p, subject) for p in permissions(identity).subscribe)


def test_matching_follows_nats() -> None:
    assert matches("gw.>", "gw.a.b") and not matches("gw.>", "gw")
    assert matches("gw.*", "gw.a") and not matches("gw.*", "gw.a.b")


def test_only_ingress_publishes_requests_and_reads_answers() -> None:
    assert {i for i in IDENTITIES if may_publish(i, s.REQ_REDACT)} == {"ingress"}
    assert {i for i in IDENTITIES if may_subscribe(i, f"{s.REPLY_PREFIX}.ingress1.req1")} == {"ingress"}


def test_only_provider_roles_take_the_call_subject() -> None:
    assert {i for i in IDENTITIES if may_subscribe(i, s.REQ_CALL)} == {"provider", "stages"}
    assert not may_subscribe("redaction", s.REQ_CALL)


@pytest.mark.parametrize("lane", s.LANES)
@pytest.mark.parametrize("stage", STAGE_ROLES)
def test_each_stage_subscribes_only_to_its_own_hop_in_either_lane(stage: str, lane: str) -> None:
    hops = {"redaction": set(), "policy": {s.REQ_POLICY}, "routing": {s.REQ_ROUTE}, "provider": {s.REQ_CALL},
            "output_filter": {s.RESP_FILTER}}
    chain = [s.REQ_REDACT, s.REQ_POLICY, s.REQ_ROUTE, s.REQ_CALL, s.RESP_FILTER]
    assert {hop for hop in chain if may_subscribe(stage, s.in_lane(hop, lane))} == hops[stage]
    assert may_subscribe(stage, s.ping_subject(stage, lane))
    assert may_publish(stage, f"{s.REPLY_PREFIX}.ingress1.req1")  # answers the caller...
    assert not may_subscribe(stage, f"{s.REPLY_PREFIX}.ingress1.req1")  # ...never reads anyone's answers


def test_the_hosted_stages_identity_is_the_union_of_the_stage_roles() -> None:
    union = {p for stage in STAGE_ROLES for p in permissions(stage).publish}
    assert set(permissions("stages").publish) == union
    assert set(permissions("stages").subscribe) - {f"{s.inbox_prefix('stages')}.>"} == \
        {p for stage in STAGE_ROLES for p in permissions(stage).subscribe} - \
        {f"{s.inbox_prefix(stage)}.>" for stage in STAGE_ROLES}


CONFIG_PUT = s.kv_key(s.BUCKET_CONFIG, s.CONFIG_KEY)
KEY_PUT = s.kv_key(s.BUCKET_KEYS, "key.k1")
LIMIT_PUT = s.kv_key(s.BUCKET_LIMITS, "team.t1")


def test_who_writes_the_control_plane() -> None:
    admins = {"supervisor", "admin", "op-alice"}
    assert {i for i in (*IDENTITIES, "op-alice") if may_publish(i, CONFIG_PUT)} == admins
    # keys and limits: admin and operators, and ingress for the admin API over HTTP (behind its admin key)
    assert {i for i in (*IDENTITIES, "op-alice") if may_publish(i, KEY_PUT)} == {"admin", "op-alice", "ingress"}
    assert {i for i in (*IDENTITIES, "op-alice") if may_publish(i, LIMIT_PUT)} == {"admin", "op-alice", "ingress"}
    assert {i for i in IDENTITIES if may_publish(i, s.kv_key(s.BUCKET_BREAKERS, "t"))} == {"routing", "stages"}
    assert {i for i in IDENTITIES if may_publish(i, s.kv_key(s.BUCKET_AUDIT_WRITER, "writer"))} == {"sink"}


def test_only_ingress_batch_and_the_managers_touch_the_files_object_store() -> None:
    """The Files API's object store: ingress puts, reads, lists and deletes (purges) its objects, the batch
    worker reads input files and writes output files; no stage, no sink, no analyst touches a file."""
    stream = s.obj_stream(s.BUCKET_FILES)
    managers = {"supervisor", "admin", "op-alice"}  # the whole JetStream API, as for every stream
    chunk = f"$O.{s.BUCKET_FILES}.C.nuid1"
    assert {i for i in (*IDENTITIES, "op-alice") if may_publish(i, chunk)} == {"ingress", "batch"}
    for subject in (f"$JS.API.STREAM.PURGE.{stream}", f"$JS.API.DIRECT.GET.{stream}.$O.{s.BUCKET_FILES}.M.x",
                    f"$JS.API.CONSUMER.CREATE.{stream}.c1.$O.{s.BUCKET_FILES}.C.nuid1"):
        assert {i for i in (*IDENTITIES, "op-alice") if may_publish(i, subject)} == {"ingress", "batch", *managers}
    assert not may_publish("ingress", f"$JS.API.STREAM.DELETE.{stream}")
    assert not may_publish("ingress", f"$JS.API.STREAM.PURGE.{s.STREAM_REQUESTS}")


def test_only_management_identities_use_the_jetstream_management_api() -> None:
    for action in ("STREAM.CREATE.GW_REQ", "STREAM.DELETE.GW_REQ", "STREAM.UPDATE.GW_EVENTS",
                   "CONSUMER.DELETE.GW_REQ.redaction", "CONSUMER.DURABLE.CREATE.GW_REQ.mine",
                   "CONSUMER.CREATE.GW_REQ.mine"):
        subject = f"{s.JS_API}.{action}"
        assert {i for i in IDENTITIES if may_publish(i, subject)} == {"supervisor", "admin"}, subject


def test_durable_consumers_are_pulled_only_by_their_owner() -> None:
    def pullers(stream: str, consumer: str) -> set[str]:
        return {i for i in IDENTITIES if may_publish(i, s.js_consumer_api("MSG.NEXT", stream, consumer))}

    management = {"supervisor", "admin"}  # the whole JetStream API
    assert pullers(s.STREAM_REQUESTS, s.CONSUMER_REDACT) == {"redaction", "stages"} | management
    assert pullers(s.STREAM_EVENTS, s.CONSUMER_SINK) == {"sink"} | management
    assert pullers(s.STREAM_AUDIT, s.CONSUMER_AUDIT) == {"sink"} | management
    assert pullers(s.STREAM_EVENTS, s.CONSUMER_LEDGER) == {"policy", "stages"} | management


def test_the_analyst_may_only_ask_sql() -> None:
    perms = permissions("analyst")
    assert perms.publish == (s.SQL_QUERY,)
    assert perms.subscribe == (f"{s.inbox_prefix('analyst')}.>",)


def test_each_identity_reads_only_its_own_inbox() -> None:
    for identity in (*IDENTITIES, "op-alice"):
        others = [i for i in IDENTITIES if i != identity]
        assert may_subscribe(identity, f"{s.inbox_prefix(identity)}.abc.1")
        assert not any(may_subscribe(identity, f"{s.inbox_prefix(other)}.abc.1") for other in others)
        assert not may_subscribe(identity, "_INBOX.abc")  # nats-py's default prefix: nobody's


def test_audit_entries_only_under_ones_own_name() -> None:
    for identity in (*IDENTITIES, "op-alice"):
        own = [i for i in (*IDENTITIES, "op-alice") if may_publish(i, s.audit_subject(identity))]
        assert own in ([], [identity]), (identity, own)
    assert not may_publish("provider", s.audit_subject("admin"))


def test_workers_may_not_read_the_raw_requests_beyond_their_stream() -> None:
    for identity in WORKER_IDENTITIES:
        assert not may_publish(identity, s.js_stream_api("MSG.GET", s.STREAM_REQUESTS))
        assert not may_publish(identity, f"{s.JS_API}.DIRECT.GET.{s.STREAM_REQUESTS}")


def test_operators_have_admins_permissions_under_their_own_name() -> None:
    assert is_operator("op-alice") and not is_operator("op-") and not is_operator("admin")
    admin, alice = permissions("admin"), permissions("op-alice")
    assert [p for p in alice.publish if "audit.by" not in p] == [p for p in admin.publish if "audit.by" not in p]
    assert s.audit_subject("op-alice") in alice.publish


def test_an_unknown_identity_has_no_permissions() -> None:
    with pytest.raises(ValueError, match="unknown NATS identity"):
        permissions("root")


def test_the_server_block_holds_public_keys_and_permissions_only() -> None:
    block = authorization_block({"analyst": "UANALYST", "ingress": "UINGRESS"})
    assert block.startswith("authorization {")
    assert re.findall(r'"nkey": "(U\w+)"', block) == ["UANALYST", "UINGRESS"]
    assert "allow_responses" not in block  # its per-message reply tracking costs nats-server (module doc)
    assert "# analyst" in block


def test_each_identity_publishes_audit_entries_on_its_own_subject_only() -> None:
    everyone = [*IDENTITIES, "op-alice"]
    recorders = {i for i in everyone if may_publish(i, s.audit_subject(i))}
    assert recorders >= {"ingress", "sink", "supervisor", "admin", "op-alice"}  # the admin API, guardrail blocks
    for identity in everyone:
        assert not any(may_publish(identity, s.audit_subject(other)) for other in everyone if other != identity)
    assert not any(may_publish(identity, s.AUDIT) for identity in everyone)  # the bare subject names nobody


def test_answers_go_only_into_the_inboxes_of_those_who_ask() -> None:
    def answers(identity: str, asker: str, operators: tuple[str, ...] = ()) -> bool:
        inbox = f"{s.inbox_prefix(asker)}.abc.1"
        return any(matches(p, inbox) for p in permissions(identity, operators).publish)

    for stage in (*STAGE_ROLES, "stages"):  # pings from ingress, reruns' questions and hand-overs between stages
        assert answers(stage, "ingress") and answers(stage, "provider") and answers(stage, "stages")
        assert not answers(stage, "admin") and not answers(stage, "sink")
    assert answers("ingress", "output_filter") and not answers("ingress", "admin")  # ingress confirms answers
    assert answers("sink", "analyst") and answers("sink", "admin") and not answers("sink", "op-bob")
    assert answers("sink", "op-bob", ("op-bob",))  # operators the server config knows of
    for identity in ("admin", "analyst", "supervisor", "op-bob"):
        assert not any(answers(identity, asker) for asker in IDENTITIES)
    block = authorization_block({"sink": "USINK", "op-bob": "UBOB"})
    assert f"{s.inbox_prefix('op-bob')}.>" in block.split("# sink")[1]


def test_the_batch_lane_and_its_answers() -> None:
    """Only the batch worker sends lines into the batch lane and stores their answers; only redaction pulls
    the lane; the stages answer a line on its reply subject, and only the batch worker takes those."""
    assert {i for i in IDENTITIES if may_publish(i, s.REQ_BATCH)} == {"batch"}
    assert {i for i in IDENTITIES if may_publish(i, s.batch_result_subject("batch_1", 3))} == {"batch"}
    pull = f"$JS.API.CONSUMER.MSG.NEXT.{s.STREAM_REQUESTS}.{s.CONSUMER_REDACT_BATCH}"
    assert {i for i in IDENTITIES if may_publish(i, pull)} == {"redaction", "stages", "supervisor", "admin"}
    reply = s.batch_reply_subject("batch_1", 3)
    assert {"output_filter", "policy", "stages"} <= {i for i in IDENTITIES if may_publish(i, reply)}
    assert "batch" in {i for i in IDENTITIES if may_subscribe(i, reply)}
    assert {i for i in IDENTITIES if may_publish(i, s.kv_key(s.BUCKET_BATCHES, "job.batch_1"))} == {
        "ingress", "batch"}
    # the lane's own hops: only the stage before passes a line on, ingress cannot reach them
    assert {i for i in IDENTITIES if may_publish(i, s.in_lane(s.REQ_CALL, "batch"))} == {"routing", "stages"}
    assert not may_publish("ingress", s.ping_subject("policy", "batch"))
    # a lane process's load report is not one ingress sheds load on
    assert not may_subscribe("ingress", s.in_lane(s.LOAD_REPORT, "batch"))


def test_only_ingress_asks_for_metrics_and_every_worker_answers_it() -> None:
    assert {i for i in IDENTITIES if may_publish(i, s.METRICS_SCRAPE)} == {"ingress"}
    assert {i for i in IDENTITIES if may_subscribe(i, s.METRICS_SCRAPE)} == set(WORKER_IDENTITIES)
    inbox = f"{s.inbox_prefix('ingress')}.scrape1"
    assert {i for i in WORKER_IDENTITIES if may_publish(i, inbox)} == set(WORKER_IDENTITIES)
    # the broker's gauges: info only, never a message
    assert may_publish("ingress", s.js_consumer_api("INFO", s.STREAM_REQUESTS, s.CONSUMER_REDACT))
    assert not may_publish("ingress", s.js_consumer_api("MSG.NEXT", s.STREAM_REQUESTS, s.CONSUMER_REDACT))
