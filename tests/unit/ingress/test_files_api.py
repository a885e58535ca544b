"""The Files API's handlers over a real JetStream object store (ASGI, no HTTP server): multipart parsing
and its refusals (415, 413 while reading, 408, 400), batch validation at upload, tenant scoping, listing
pages, and every error in the OpenAI shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from infra.file_store import FileStore
from ingress.asgi import Receive, Scope, Send
from ingress.files_api import FilesApi, list_page
from ingress.routes import template_route
from schemas import subjects
from schemas.config import GatewayConfig, hash_api_key
from schemas.errors import InvalidRequest
from schemas.events import RequestCompleted
from schemas.files import FileObject
from schemas.governance import KeyDirectory
from tests.support.jetstream import JetStreamServer, jetstream_server

pytestmark = pytest.mark.server

CONFIG = GatewayConfig.model_validate({"keys": [
    {"id": "a", "key_sha256": hash_api_key("sk-acme"), "tenant": "acme"},
    {"id": "g", "key_sha256": hash_api_key("sk-globex"), "tenant": "globex"}]})
ACME = {"authorization": "Bearer sk-acme"}
GLOBEX = {"authorization": "Bearer sk-globex"}
LIMIT = 4096
KEY = bytes(range(32))
LINE = orjson.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}) + b"\n"


DIRECTORY = KeyDirectory(config_keys=[k.virtual() for k in CONFIG.keys])


def directory() -> KeyDirectory:
    return DIRECTORY


class _App:
    """The Files API behind the route table, as ingress dispatches it."""

    def __init__(self, files: FilesApi) -> None:
        self.files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/v1/files":
            await (self.files.create if method == "POST" else self.files.list)(scope, receive, send)
            return
        found = template_route(method, path)
        assert found is not None, (method, path)
        route, params = found
        if route.handler == "retrieve_file":
            await self.files.retrieve(scope, send, params["file_id"])
        elif route.handler == "file_content":
            await self.files.content(scope, send, params["file_id"])
        else:
            await self.files.delete(scope, send, params["file_id"])


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with jetstream_server(tmp_path / "nats") as srv:
        yield srv


@pytest.fixture
async def client(server: JetStreamServer) -> AsyncIterator[httpx.AsyncClient]:
    files = FilesApi(lambda: FileStore(server.js, KEY), directory, LIMIT, 5.0, lambda: 1024)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_App(files)), base_url="http://gw") as c:
        yield c


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    return body


async def upload(client: httpx.AsyncClient, data: bytes, purpose: str = "batch", name: str = "in.jsonl",
                 headers: dict[str, str] = ACME) -> httpx.Response:
    return await client.post("/v1/files", files={"file": (name, data)}, data={"purpose": purpose}, headers=headers)


async def test_upload_retrieve_content_list_delete(client: httpx.AsyncClient) -> None:
    created = await upload(client, LINE * 2 + LINE.replace(b'"a"', b'"b"'))
    # two lines with custom_id "a": refused before anything is stored
    assert error(created, 400)["code"] == "duplicate_custom_id"
    data = LINE + LINE.replace(b'"a"', b'"b"')
    created = await upload(client, data)
    assert created.status_code == 200, created.text
    file = created.json()
    assert set(file) == {"id", "object", "bytes", "created_at", "filename", "purpose", "status", "status_details",
                         "expires_at"}
    assert (file["object"], file["bytes"], file["filename"], file["purpose"], file["status"]) == (
        "file", len(data), "in.jsonl", "batch", "processed")
    assert (await client.get(f"/v1/files/{file['id']}", headers=ACME)).json() == file
    content = await client.get(f"/v1/files/{file['id']}/content", headers=ACME)
    assert content.content == data and content.headers["content-type"] == "application/octet-stream"
    listed = (await client.get("/v1/files", headers=ACME)).json()
    assert listed == {"object": "list", "data": [file], "has_more": False, "first_id": file["id"],
                      "last_id": file["id"]}
    assert (await client.delete(f"/v1/files/{file['id']}", headers=ACME)).json() == {
        "id": file["id"], "object": "file", "deleted": True}
    for method, path in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
        answer = await client.request(method, f"/v1/files/{file['id']}{path}", headers=ACME)
        assert error(answer, 404)["code"] == "file_not_found"
    assert (await client.get("/v1/files", headers=ACME)).json()["data"] == []


async def test_a_file_is_sealed_at_rest(server: JetStreamServer, client: httpx.AsyncClient) -> None:
    secret = b'{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"input": "jane@example.com"}}'
    file = (await upload(client, secret)).json()
    assert file["bytes"] == len(secret)
    stored = await (await server.js.object_store(subjects.BUCKET_FILES)).get(file["id"])
    assert stored.data and b"jane@example.com" not in stored.data and len(stored.data) > len(secret)
    assert (await client.get(f"/v1/files/{file['id']}/content", headers=ACME)).content == secret


async def test_a_file_of_several_chunks_streams_back_whole(server: JetStreamServer) -> None:
    """Past one 128 KiB record the content is read, opened and sent a chunk at a time."""
    data = bytes(i % 249 for i in range(300_000))
    files = FilesApi(lambda: FileStore(server.js, KEY), directory, 1_000_000, 5.0, lambda: 1024)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_App(files)), base_url="http://gw") as c:
        file = (await upload(c, data, purpose="user_data", name="big.bin")).json()
        assert file["bytes"] == len(data)
        content = await c.get(f"/v1/files/{file['id']}/content", headers=ACME)
    assert content.content == data and content.headers["content-length"] == str(len(data))


async def test_each_operation_is_recorded(server: JetStreamServer) -> None:
    rows: list[RequestCompleted] = []
    files = FilesApi(lambda: FileStore(server.js, KEY), directory, LIMIT, 5.0, lambda: 1024, rows.append)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_App(files)), base_url="http://gw") as c:
        file = (await upload(c, LINE)).json()
        await c.get(f"/v1/files/{file['id']}/content", headers=ACME)
        await c.get(f"/v1/files/{file['id']}", headers=GLOBEX)
        await c.get("/v1/files", headers={})
    seen = [(r.endpoint, r.status_code, r.tenant, r.api_key_id, r.error_code, r.stage) for r in rows]
    assert seen == [("files.create", 200, "acme", "a", "", "ingress"),
                    ("files.content", 200, "acme", "a", "", "ingress"),
                    ("files.retrieve", 404, "globex", "g", "file_not_found", "ingress"),
                    ("files.list", 401, "", "", "missing_api_key", "ingress")]
    assert len({r.request_id for r in rows}) == 4 and all(r.latency_ms >= 0 for r in rows)


async def test_tenants_are_isolated(client: httpx.AsyncClient) -> None:
    file = (await upload(client, b"hello", purpose="user_data")).json()
    for method, path in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
        answer = await client.request(method, f"/v1/files/{file['id']}{path}", headers=GLOBEX)
        assert error(answer, 404)["code"] == "file_not_found"  # as for an id that never existed
    assert (await client.get("/v1/files", headers=GLOBEX)).json()["data"] == []
    assert (await client.get(f"/v1/files/{file['id']}/content", headers=ACME)).content == b"hello"


async def test_refusals(client: httpx.AsyncClient) -> None:
    assert error(await upload(client, LINE, headers={}), 401)["type"] == "authentication_error"
    assert error(await upload(client, b"x" * (LIMIT + 1), purpose="user_data"), 413)["code"] == "file_too_large"
    assert (await upload(client, b"x" * LIMIT, purpose="user_data")).status_code == 200  # the limit itself
    assert error(await upload(client, LINE, purpose="bogus"), 400)["param"] == "purpose"
    answer = await client.post("/v1/files", content=b"{}", headers={**ACME, "content-type": "application/json"})
    assert error(answer, 415)["code"] == "unsupported_media_type"
    answer = await client.post("/v1/files", data={"purpose": "batch"}, files={"other": ("x", b"1")}, headers=ACME)
    assert error(answer, 400)["code"] == "missing_file"
    answer = await client.post("/v1/files", files={"file": ("x", LINE)}, headers=ACME)
    assert error(answer, 400)["code"] == "missing_purpose"
    too_long = orjson.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings",
                             "body": {"input": "x" * 2000}})
    assert error(await upload(client, too_long), 400)["code"] == "batch_line_too_large"
    assert error(await client.get("/v1/files/not-an-id", headers=ACME), 404)["code"] == "file_not_found"
    assert error(await client.get("/v1/files?limit=0", headers=ACME), 400)["param"] == "limit"
    assert error(await client.get("/v1/files?order=up", headers=ACME), 400)["param"] == "order"


async def test_a_broker_not_yet_connected_is_a_503() -> None:
    files = FilesApi(lambda: None, directory, LIMIT, 5.0, lambda: 1024)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_App(files)), base_url="http://gw") as c:
        answer = await c.get("/v1/files", headers=ACME)
    assert error(answer, 503)["code"] == "broker_unavailable"


def _file(file_id: str, created_at: int, purpose: str = "batch") -> FileObject:
    return FileObject(id=file_id, bytes=1, created_at=created_at, filename="f", purpose=purpose)


def test_list_pages_as_openai_does() -> None:
    files = [_file("file-1", 1), _file("file-2", 2, "user_data"), _file("file-3", 3)]
    page = list_page(files, {})
    assert [f["id"] for f in page["data"]] == ["file-3", "file-2", "file-1"]  # newest first
    assert (page["first_id"], page["last_id"], page["has_more"]) == ("file-3", "file-1", False)
    page = list_page(files, {"limit": "1"})
    assert [f["id"] for f in page["data"]] == ["file-3"] and page["has_more"]
    page = list_page(files, {"limit": "1", "after": "file-3"})
    assert [f["id"] for f in page["data"]] == ["file-2"] and page["has_more"]
    assert [f["id"] for f in list_page(files, {"order": "asc", "purpose": "batch"})["data"]] == ["file-1", "file-3"]
    assert list_page(files, {"after": "file-unknown"})["data"] == []
    empty = list_page([], {})
    assert (empty["first_id"], empty["last_id"], empty["has_more"]) == (None, None, False)
    for query in ({"limit": "0"}, {"limit": "10001"}, {"limit": "x"}, {"order": "random"}):
        with pytest.raises(InvalidRequest):
            list_page(files, query)
