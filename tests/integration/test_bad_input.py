"""Bad input gets the right 4xx in the OpenAI error shape, is recorded, and the gateway keeps serving."""

from __future__ import annotations

import httpx
import openai
import pytest

from infra.operator.launcher import DEMO_KEY, LIMITED_KEY, RunningGateway

pytestmark = pytest.mark.integration

AUTH = {"authorization": f"Bearer {DEMO_KEY}"}


def post(gw: RunningGateway, body: bytes | dict[str, object], headers: dict[str, str] | None = None) -> httpx.Response:
    url = f"{gw.base_url}/v1/chat/completions"
    h = {**AUTH, **(headers or {})}
    if isinstance(body, bytes):
        return httpx.post(url, content=body, headers={**h, "content-type": "application/json"}, timeout=30)
    return httpx.post(url, json=body, headers=h, timeout=30)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code:
        assert error["code"] == code
    assert response.headers["x-gateway-request-id"]
    return dict(error)


@pytest.mark.parametrize(("body", "status", "code", "param"), [
    (b"{not json", 400, "invalid_json", None),
    (b"[]", 400, "invalid_json", None),
    ({"model": "gpt-4o-mini"}, 400, "missing_required_parameter", "messages"),
    ({"model": "gpt-4o-mini", "messages": []}, 400, "empty_array", "messages"),
    ({"model": "gpt-4o-mini", "messages": "hi"}, 400, None, "messages"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}, 400, None, "messages.0.role"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400, None,
     "temperature"),
    ({"messages": [{"role": "user", "content": "x"}]}, 400, "missing_required_parameter", "model"),
    ({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}, 404, "model_not_found", "model"),
])
def test_invalid_requests(gateway: RunningGateway, body: bytes | dict[str, object], status: int, code: str | None,
                          param: str | None) -> None:
    error = assert_error(post(gateway, body), status, code)
    assert error["param"] == param


def test_body_over_the_limit_is_413(gateway: RunningGateway) -> None:
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 70_000}]}
    assert_error(post(gateway, big), 413, "request_too_large")


@pytest.mark.parametrize(("headers", "code"), [
    ({"authorization": ""}, "missing_api_key"),
    ({"authorization": "Bearer sk-wrong"}, "invalid_api_key"),
])
def test_bad_keys_are_401(gateway: RunningGateway, headers: dict[str, str], code: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    assert_error(post(gateway, body, headers), 401, code)


def test_model_not_allowed_for_key_is_403(gateway: RunningGateway) -> None:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=LIMITED_KEY, max_retries=0) as c:
        with pytest.raises(openai.PermissionDeniedError) as err:
            c.chat.completions.create(model="claude-3-5-haiku", messages=[{"role": "user", "content": "x"}])
        assert err.value.code == "model_not_allowed"
        with pytest.raises(openai.PermissionDeniedError) as err:
            c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "y" * 500}])
        assert err.value.code == "input_too_large"


def test_refused_requests_are_recorded_and_the_gateway_keeps_serving(gateway: RunningGateway) -> None:
    response = post(gateway, b"{broken")
    request_id = response.headers["x-gateway-request-id"]
    rows = gateway.wait_rows(f"SELECT status_code, error_code, stage, tenant, api_key_id FROM requests "
                             f"WHERE request_id = '{request_id}'", lambda r: len(r) == 1)
    assert rows[0]["status_code"] == 400 and rows[0]["stage"] == "ingress"
    assert (rows[0]["tenant"], rows[0]["api_key_id"]) == ("acme", "demo")  # the key was good, the body was not
    ok = post(gateway, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "still up?"}]})
    assert ok.status_code == 200
