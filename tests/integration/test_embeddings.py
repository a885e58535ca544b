"""/v1/embeddings through the whole chain with the official openai SDK; redaction applies."""

from __future__ import annotations

import openai
import pytest

from infra.doubles.mock_provider.embeddings_wire import vector
from infra.operator.launcher import RunningGateway

pytestmark = pytest.mark.integration


def test_embeddings_are_computed_on_redacted_text(client: openai.OpenAI, gateway: RunningGateway) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["plain words", "mail jane.roe@example.com today"])
    result = raw.parse()
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[0].embedding == pytest.approx(vector("plain words"))
    # the provider embedded the placeholder, never the address
    assert result.data[1].embedding == pytest.approx(vector("mail <EMAIL_ADDRESS_1> today"))
    assert result.usage.prompt_tokens > 0
    request_id = raw.headers["x-gateway-request-id"]
    rows = gateway.wait_rows(
        "SELECT endpoint, redactions, prompt_tokens, completion_tokens, cost_usd, response_body FROM requests "
        f"WHERE request_id = '{request_id}'", lambda r: len(r) == 1)
    row = rows[0]
    assert row["endpoint"] == "embeddings" and row["redactions"] == 1 and row["completion_tokens"] == 0
    assert float(row["cost_usd"]) > 0  # text-embedding-3-small is in the shipped catalog
    assert "jane.roe" not in row["response_body"] and '"count":2' in row["response_body"]


def test_a_provider_without_embeddings_falls_back(client: openai.OpenAI, gateway: RunningGateway) -> None:
    raw = client.embeddings.with_raw_response.create(model="embed-fallback", input="hello")
    assert len(raw.parse().data) == 1
    rows = gateway.wait_rows("SELECT provider, attempts FROM requests "
                             f"WHERE request_id = '{raw.headers['x-gateway-request-id']}'", lambda r: len(r) == 1)
    assert rows[0]["provider"] == "mock-openai" and rows[0]["attempts"] == 2


def test_bad_embeddings_requests(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="text-embedding-3-small", input="")
    assert err.value.body["param"] == "input"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-embedder", input="x")
