"""The gateway's OpenAPI document: valid OpenAPI 3.1, every route the app serves, request bodies that are the
validator's own models, and errors documented in the shape of the route's surface."""

from __future__ import annotations

import json

from openapi_spec_validator import validate

from ingress import admin_api
from ingress.app import Ingress
from ingress.openapi import CONNECTION_ERRORS, openapi_document
from ingress.routes import OPENAPI_PATH, ROUTES, allowed_methods
from schemas.config import GatewayConfig


def _app() -> Ingress:
    return Ingress(GatewayConfig.model_validate({"version": 1}), "nats://127.0.0.1:1", envelope_key=bytes(32))


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = openapi_document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises on an invalid document


def test_every_route_the_app_serves_is_documented() -> None:
    app = _app()
    served = {(path, method.lower()) for method, path in app._routes}
    served |= {(r.path, r.method.lower()) for r in ROUTES if r.template}  # served by prefix
    served |= {(r.path, r.method.lower()) for r in admin_api.ROUTES} | {(admin_api.OPENAPI_PATH, "get")}
    documented = {(path, method) for path, ops in openapi_document()["paths"].items() for method in ops}
    assert documented == served
    for route in ROUTES:  # every route has its handler on the app
        assert callable(getattr(app, route.handler))


def test_request_bodies_are_the_validators_models() -> None:
    doc = openapi_document()
    for route in ROUTES:
        operation = doc["paths"][route.path][route.method.lower()]
        if route.form is not None:  # an upload: its multipart form, as the route declares it
            assert operation["requestBody"]["content"] == {"multipart/form-data": {"schema": dict(route.form)}}
            continue
        if route.request is None:
            assert "requestBody" not in operation
            continue
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{route.request.__name__}"
        schema = doc["components"]["schemas"][route.request.__name__]
        assert schema == {k: v for k, v in route.request.model_json_schema(
            ref_template="#/components/schemas/{model}").items() if k != "$defs"}
    assert set(doc["components"]["schemas"]["ChatCompletionRequest"]["required"]) == {"model", "messages"}


def test_errors_are_documented_in_the_surfaces_shape() -> None:
    doc = openapi_document()
    for route in ROUTES:
        responses = doc["paths"][route.path][route.method.lower()]["responses"]
        assert {str(s) for s in (*route.errors, *CONNECTION_ERRORS)} <= set(responses)
        schema = responses["401" if route.auth else "400"]["content"]["application/json"]["schema"]
        if route.error_shape == "anthropic" and route.auth:
            assert schema == {"$ref": "#/components/schemas/AnthropicError"}
        elif route.error_shape == "openai":
            assert schema == {"$ref": "#/components/schemas/Error"}
    chat = doc["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"400", "401", "403", "404", "408", "413", "429", "503", "504"} <= set(chat)
    assert "text/event-stream" in chat["200"]["content"]
    for path, operations in doc["paths"].items():
        if path.startswith("/admin/"):
            for operation in operations.values():
                assert {"400", "408", "413", "431"} <= set(operation["responses"])


def test_allowed_methods_for_a_405() -> None:
    assert allowed_methods("/v1/chat/completions") == ["POST"]
    assert allowed_methods("/v1/models/gpt-4o") == ["GET"]
    assert allowed_methods("/v1/models/org/model") == ["GET"]
    assert allowed_methods(OPENAPI_PATH) == ["GET"]
    assert allowed_methods("/v1/nothing") == []
    assert allowed_methods("/v1/models/") == []
    assert allowed_methods("/v1/files") == ["GET", "POST"]
    assert allowed_methods("/v1/files/file-1") == ["DELETE", "GET"]
    assert allowed_methods("/v1/files/file-1/content") == ["GET"]
    assert allowed_methods("/v1/files/a/b") == []


async def _ask(app: Ingress, method: str, path: str) -> tuple[int, dict[str, object]]:
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app({"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}, receive, send)
    status = sent[0]["status"]
    assert isinstance(status, int)
    body = sent[1]["body"]
    assert isinstance(body, bytes)
    headers = dict(sent[0]["headers"])  # type: ignore[call-overload]
    if not headers.get(b"content-type", b"").startswith(b"application/json"):
        return status, {}  # the dashboard's page and files, served: no error body
    return status, json.loads(body)


async def test_the_app_serves_every_documented_operation_and_nothing_else() -> None:
    """Asked without a key or a broker, every documented operation reaches its handler (never the router's
    404 unknown_route or 405); an undocumented path or method does not."""
    app = _app()
    for path, operations in openapi_document()["paths"].items():
        for method in operations:
            status, body = await _ask(app, method.upper(), path.replace("{kind}", "team").replace("{id}", "x")
                                     .replace("{file_id}", "file-x"))
            error = body.get("error")
            code = error.get("code") if isinstance(error, dict) else None
            assert code not in ("unknown_route", "method_not_allowed"), (method, path, status, body)
    status, body = await _ask(app, "GET", "/v1/nothing")
    error = body["error"]
    assert status == 404 and isinstance(error, dict) and error["code"] == "unknown_route"
    status, _ = await _ask(app, "DELETE", "/v1/models")
    assert status == 405
