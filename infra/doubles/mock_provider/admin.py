"""The `/_mock/*` admin API: health, recorded requests and scripted faults."""

from __future__ import annotations

from urllib.parse import parse_qs

import orjson

from infra.doubles.mock_provider.asgi import Receive, Send, read_body, send_bytes
from infra.doubles.mock_provider.directives import DirectiveError
from infra.doubles.mock_provider.faults import FaultBook
from infra.doubles.mock_provider.openai_wire import error_body
from infra.doubles.mock_provider.recorder import Recorder


async def handle(
    method: str,
    path: str,
    receive: Receive,
    send: Send,
    recorder: Recorder,
    faults: FaultBook,
    query: bytes = b"",
    streaming: int = 0,
) -> None:
    """``streaming``: the paced streams being sent now (a client that left ends its stream)."""
    if path == "/_mock/health" and method in ("GET", "HEAD"):
        await send_bytes(send, 200, orjson.dumps({"status": "ok", "streaming": streaming}))
    elif path == "/_mock/requests" and method == "GET":
        after = _after(query)
        if after is None:
            await send_bytes(send, 400, error_body(400, "after must be a non-negative integer (a seq)."))
        else:
            await send_bytes(send, 200, orjson.dumps(recorder.snapshot(after)))
    elif path == "/_mock/requests" and method == "DELETE":
        await send_bytes(send, 200, orjson.dumps({"cleared": recorder.clear()}))
    elif path == "/_mock/faults" and method == "GET":
        await send_bytes(send, 200, orjson.dumps(faults.listing()))
    elif path == "/_mock/faults" and method == "DELETE":
        faults.clear()
        await send_bytes(send, 200, b'{"cleared":true}')
    elif path == "/_mock/faults" and method == "POST":
        await _add_fault(receive, send, faults)
    else:
        await send_bytes(
            send, 404, error_body(404, f"Unknown mock admin route: {method} {path}", "unknown_url")
        )


async def _add_fault(receive: Receive, send: Send, faults: FaultBook) -> None:
    raw = await read_body(receive)
    try:
        entry = faults.add(orjson.loads(raw))
    except orjson.JSONDecodeError:
        await send_bytes(send, 400, error_body(400, "We could not parse the JSON body of your request."))
        return
    except DirectiveError as exc:
        await send_bytes(send, 400, error_body(400, str(exc)))
        return
    await send_bytes(send, 201, orjson.dumps(entry.as_json()))


def _after(query: bytes) -> int | None:
    """`?after=N` of `GET /_mock/requests` (0 when absent), or None when it is not a non-negative integer."""
    if not query:
        return 0
    values = parse_qs(query.decode("latin-1"), keep_blank_values=True).get("after")
    if not values:
        return 0
    value = values[-1].strip()
    return int(value) if value.isascii() and value.isdigit() else None
