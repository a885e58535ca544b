"""Answers coming back from the chain, matched to the waiting HTTP requests.

One wildcard subscription per ingress process (``gw.reply.<ingress_id>.*``). The first answer for a
request wins; anything after it (a redelivered chain that ran twice) is dropped here, so no caller is
ever answered twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from nats.aio.msg import Msg

from schemas import subjects


class ReplyWaiter:
    """Pending requests by id: a queue each (a stream has many messages, a response one)."""

    def __init__(self, ingress_id: str) -> None:
        self.prefix = f"{subjects.REPLY_PREFIX}.{ingress_id}"
        self._pending: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.late_replies = 0

    @property
    def wildcard(self) -> str:
        return f"{self.prefix}.*"

    def subject_for(self, request_id: str) -> str:
        return f"{self.prefix}.{request_id}"

    def open(self, request_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pending[request_id] = queue
        return queue

    def close(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    def __len__(self) -> int:
        return len(self._pending)

    async def on_message(self, msg: Msg) -> None:
        request_id = msg.subject.rsplit(".", 1)[-1]
        queue = self._pending.get(request_id)
        if queue is None:
            self.late_replies += 1
            return
        queue.put_nowait(orjson.loads(msg.data))
