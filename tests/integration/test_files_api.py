"""The OpenAI Files API with the official openai SDK, unmodified, against a live gateway: upload, retrieve,
list with pagination, content byte for byte, delete, a bad batch file refused naming its line, tenant
isolation and the upload limit. Every file lands in the ``GW_FILES`` object store under ingress's own NATS
identity (the session's autouse fixture fails on any permission nats-server refused)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, LIMITED_KEY, RunningGateway, gateway_config, start_gateway

pytestmark = pytest.mark.integration

MAX_FILE_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("files")
    gw = start_gateway(root, gateway_config(free_port()), replicas=["stages=1"],
                       extra_env={"GATEWAY_MAX_FILE_BYTES": str(MAX_FILE_BYTES)})
    try:
        yield gw
    finally:
        gw.stop()


def _client(gw: RunningGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def acme(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with _client(gateway, DEMO_KEY) as c:  # tenant acme
        yield c


@pytest.fixture(scope="module")
def globex(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with _client(gateway, LIMITED_KEY) as c:  # tenant globex
        yield c


def _batch(n: int, url: str = "/v1/chat/completions") -> bytes:
    return b"".join(orjson.dumps({"custom_id": f"req-{i}", "method": "POST", "url": url,
                                  "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}})
                    + b"\n" for i in range(n))


def test_upload_retrieve_content_delete(acme: openai.OpenAI, tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    data = _batch(3)
    path.write_bytes(data)
    with path.open("rb") as f:
        created = acme.files.create(file=f, purpose="batch")
    assert created.id.startswith("file-") and created.object == "file"
    assert (created.bytes, created.filename, created.purpose, created.status) == (len(data), "requests.jsonl",
                                                                                   "batch", "processed")
    assert acme.files.retrieve(created.id) == created
    assert acme.files.content(created.id).read() == data  # byte for byte
    gone = acme.files.delete(created.id)
    assert (gone.id, gone.deleted) == (created.id, True)
    with pytest.raises(openai.NotFoundError) as caught:
        acme.files.retrieve(created.id)
    assert caught.value.code == "file_not_found"
    with pytest.raises(openai.NotFoundError):
        acme.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        acme.files.delete(created.id)


def test_binary_content_of_another_purpose_round_trips(acme: openai.OpenAI) -> None:
    data = bytes(range(256)) * 200  # 51,200 bytes: several chunks of the multipart body, not JSONL at all
    created = acme.files.create(file=("blob.bin", data), purpose="user_data")
    assert created.bytes == len(data) and created.purpose == "user_data"
    assert acme.files.content(created.id).read() == data
    acme.files.delete(created.id)


def test_list_paginates_newest_first(acme: openai.OpenAI) -> None:
    ids = [acme.files.create(file=(f"f{i}.jsonl", _batch(1)), purpose="batch").id for i in range(3)]
    try:
        listed = [f.id for f in acme.files.list(purpose="batch")]
        assert listed[:3] == ids[::-1]
        first = acme.files.list(limit=2, purpose="batch")
        assert [f.id for f in first.data] == ids[::-1][:2] and first.has_more
        rest = acme.files.list(limit=2, after=first.data[-1].id, purpose="batch")
        assert [f.id for f in rest.data] == ids[::-1][2:3]
        assert [f.id for f in acme.files.list(order="asc", purpose="batch")] == listed[::-1]
        every = [f.id for f in acme.files.list(limit=1, purpose="batch")]  # the SDK follows `after` itself
        assert every == listed
        assert not list(acme.files.list(purpose="vision"))
    finally:
        for file_id in ids:
            acme.files.delete(file_id)


def test_a_bad_batch_file_is_refused_naming_its_line(acme: openai.OpenAI) -> None:
    bad = _batch(2) + b'{"custom_id": "req-0", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    with pytest.raises(openai.BadRequestError) as caught:
        acme.files.create(file=("bad.jsonl", bad), purpose="batch")
    assert caught.value.code == "duplicate_custom_id"
    assert "Duplicate custom_id 'req-0' on lines 1 and 3" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        acme.files.create(file=("bad.jsonl", _batch(1) + b"{not json\n"), purpose="batch")
    assert caught.value.code == "invalid_json_line" and "Line 2" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        acme.files.create(file=("bad.jsonl", _batch(1, "/v1/completions")), purpose="batch")
    assert caught.value.code == "unsupported_url" and "Line 1" in caught.value.message


def test_a_tenant_never_sees_another_tenants_files(acme: openai.OpenAI, globex: openai.OpenAI) -> None:
    mine = acme.files.create(file=("mine.jsonl", _batch(1)), purpose="batch")
    try:
        for call in (globex.files.retrieve, globex.files.content, globex.files.delete):
            with pytest.raises(openai.NotFoundError):  # 404 as for an unknown id: ids do not leak
                call(mine.id)
        assert mine.id not in {f.id for f in globex.files.list()}
        assert acme.files.retrieve(mine.id).id == mine.id  # still there: globex's delete did nothing
    finally:
        acme.files.delete(mine.id)


def test_the_size_limit_and_other_refusals(gateway: RunningGateway, acme: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        acme.files.create(file=("big.bin", b"x" * (MAX_FILE_BYTES + 1)), purpose="user_data")
    assert caught.value.status_code == 413 and caught.value.code == "file_too_large"
    exact = acme.files.create(file=("exact.bin", b"x" * MAX_FILE_BYTES), purpose="user_data")
    acme.files.delete(exact.id)
    with pytest.raises(openai.BadRequestError) as caught:
        acme.files.create(file=("a.txt", b"hello"), purpose="nonsense")  # type: ignore[arg-type]
    assert caught.value.code == "invalid_purpose"
    headers = {"authorization": f"Bearer {DEMO_KEY}", "content-type": "application/json"}
    answer = httpx.post(f"{gateway.base_url}/v1/files", content=b"{}", headers=headers, timeout=10)
    assert answer.status_code == 415 and answer.json()["error"]["code"] == "unsupported_media_type"
    answer = httpx.get(f"{gateway.base_url}/v1/files", headers={"authorization": "Bearer sk-wrong"}, timeout=10)
    assert answer.status_code == 401 and answer.json()["error"]["type"]


def test_file_operations_are_recorded(gateway: RunningGateway, acme: openai.OpenAI) -> None:
    file = acme.files.create(file=("rec.jsonl", _batch(1)), purpose="batch")
    acme.files.delete(file.id)
    rows = gateway.wait_rows("SELECT endpoint, status_code, tenant FROM requests WHERE endpoint LIKE 'files.%'",
                             lambda rows: {"files.create", "files.delete"} <= {r["endpoint"] for r in rows})
    assert {(r["endpoint"], r["status_code"], r["tenant"]) for r in rows} >= {
        ("files.create", 200, "acme"), ("files.delete", 200, "acme")}
