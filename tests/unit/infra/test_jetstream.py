"""Declaring the streams over an earlier deployment: GW_AUDIT captured only the bare ``gw.audit`` and
its ``audit`` consumer filtered on it; after ``declare`` the stream captures ``gw.audit.>`` too, the
consumer takes both, and its ack position is kept (the entries not yet chained still come, first)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from infra import jetstream
from infra.settings import Settings
from schemas import subjects
from tests.support.jetstream import all_acked, frozen_for, jetstream_server

pytestmark = pytest.mark.server


async def test_an_old_audit_stream_and_consumer_are_updated_in_place(tmp_path: Path) -> None:
    async with jetstream_server(tmp_path / "nats", declare=False) as srv:
        js = srv.js
        await js.add_stream(StreamConfig(name=subjects.STREAM_AUDIT, subjects=[subjects.AUDIT],
                                         storage=StorageType.FILE))
        await js.add_consumer(subjects.STREAM_AUDIT, ConsumerConfig(
            durable_name=subjects.CONSUMER_AUDIT, deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
            filter_subject=subjects.AUDIT))
        for n in range(3):
            await js.publish(subjects.AUDIT, b"old-%d" % n)
        psub = await js.pull_subscribe_bind(durable=subjects.CONSUMER_AUDIT, stream=subjects.STREAM_AUDIT)
        (chained,) = await psub.fetch(1, timeout=5)
        await chained.ack_sync()
        await psub.unsubscribe()

        await jetstream.declare(js, Settings())
        stream = await js.stream_info(subjects.STREAM_AUDIT)
        assert stream.config.subjects == ["gw.audit", "gw.audit.>"] and stream.state.messages == 3
        consumer = await js.consumer_info(subjects.STREAM_AUDIT, subjects.CONSUMER_AUDIT)
        assert consumer.config.filter_subjects == ["gw.audit", "gw.audit.>"] and not consumer.config.filter_subject
        assert consumer.num_pending == 2  # the ack position is kept

        await js.publish(subjects.audit_subject("admin"), b"new")
        psub = await js.pull_subscribe_bind(durable=subjects.CONSUMER_AUDIT, stream=subjects.STREAM_AUDIT)
        got = await psub.fetch(10, timeout=5)
        assert [(m.subject, m.data) for m in got] == [
            ("gw.audit", b"old-1"), ("gw.audit", b"old-2"), ("gw.audit.by.admin", b"new")]
        await jetstream.declare(js, Settings())  # again: nothing changes
        assert (await js.consumer_info(subjects.STREAM_AUDIT, subjects.CONSUMER_AUDIT)).num_ack_pending == 3


async def test_the_files_object_store_is_declared_file_backed_and_kept_across_declares(tmp_path: Path) -> None:
    async with jetstream_server(tmp_path / "nats") as srv:
        store = await srv.js.object_store(subjects.BUCKET_FILES)
        await store.put("file-kept", b"bytes")
        await jetstream.declare(srv.js, Settings())  # every start declares again: nothing is lost
        info = await srv.js.stream_info(subjects.obj_stream(subjects.BUCKET_FILES))
        assert info.config.storage == StorageType.FILE
        assert (await (await srv.js.object_store(subjects.BUCKET_FILES)).get("file-kept")).data == b"bytes"


async def test_a_drain_stopping_before_the_brokers_answer_lands_still_handles_what_it_sent(tmp_path: Path) -> None:
    # The window's pulls give up after a millisecond while the broker is frozen; their answer lands
    # after the stop was asked. Handled and acked by this drain, not left delivered-unacked for the
    # consumer's 30 s ack wait (seen as rows 30 s late after a sink restart under load).
    async with jetstream_server(tmp_path / "nats") as srv:
        for i in range(5):
            await srv.js.publish(subjects.event_subject("policy"), f"e{i}".encode())
        psub = await srv.js.pull_subscribe_bind(durable=subjects.CONSUMER_SINK, stream=subjects.STREAM_EVENTS)
        handled: list[bytes] = []

        async def handle(batch: list[Msg]) -> None:
            handled.extend(m.data for m in batch)
            for m in batch:
                await m.ack()

        stopping = asyncio.Event()
        async with frozen_for(srv.pid, jetstream.LAST_FETCH_S / 2):
            drain = asyncio.create_task(jetstream.drain_in_windows(psub, 100, "test", 0.02, stopping, handle))
            await asyncio.sleep(0.1)  # a few windows: each pull unanswered
            assert handled == []
            stopping.set()
            await drain
        assert handled == [f"e{i}".encode() for i in range(5)]
        assert await all_acked(srv.js, subjects.STREAM_EVENTS, subjects.CONSUMER_SINK) == (0, 0)
