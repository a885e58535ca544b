"""The gateway's OpenAPI 3.1 document (``GET /openapi.json``): every route ingress serves, built from the
route tables (``ingress/routes.py`` and the admin API's ``admin_api.ROUTES`` through ``admin_openapi``) and
the request models the validator uses (``schemas/openai.py``, ``ingress/anthropic_surface/models.py``), so
what it documents is what the code accepts and answers.

Every operation lists its error statuses with the shape its surface answers them in: OpenAI's
``{"error": {message, type, param, code}}`` or Anthropic's ``{"type": "error", "error": {type, message}}``.
The connection-level refusals of the HTTP layer (``ingress/http_protocol.py``: a malformed request 400,
slow headers 408, headers too large 431) can meet any operation and are listed on each.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from ingress.admin_openapi import openapi_document as admin_document
from ingress.routes import ROUTES, ApiRoute, path_params

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ANTHROPIC_ERROR_REF = {"$ref": "#/components/schemas/AnthropicError"}
_NULLABLE_STRING = {"type": ["string", "null"]}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": _NULLABLE_STRING, "code": _NULLABLE_STRING}}},
}
ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {"type": {"const": "error"}, "error": {
        "type": "object", "required": ["type", "message"],
        "properties": {"type": {"type": "string"}, "message": {"type": "string"}}}},
}

# Why each status: the description of every response of that status.
WHY = {
    400: "invalid request: malformed HTTP, invalid JSON, a field that fails validation (param names it), "
         "a header the gateway reads that is malformed, content a guardrail blocked",
    401: "missing, incorrect, revoked or expired API key",
    403: "the key may not use this model or input",
    404: "unknown model (or not allowed to this key), or no such file, batch or async request of the caller's "
         "tenant",
    409: "the batch cannot change that way now (e.g. cancelling a batch that has ended)",
    408: "the request's headers or body did not arrive in time (the connection is closed)",
    413: "body over limits.max_body_bytes, an upload over GATEWAY_MAX_FILE_BYTES (the connection is closed)",
    415: "an upload that is not multipart/form-data",
    429: "rate limit or budget exceeded",
    431: "request headers too large or too many (the connection is closed)",
    500: "the gateway failed (the dashboard: the analytics store refused its query)",
    502: "the provider failed (every target tried)",
    503: "the gateway refuses for now (broker unreachable, a stage without a live replica, overload); "
         "Retry-After says when to retry",
    504: "the request's deadline passed",
}
FILE_OBJECT = {"type": "object", "required": ["id", "object", "bytes", "created_at", "filename", "purpose", "status"],
               "properties": {"id": {"type": "string"}, "object": {"const": "file"},
                              "bytes": {"type": "integer", "minimum": 0}, "created_at": {"type": "integer"},
                              "filename": {"type": "string"}, "purpose": {"type": "string"},
                              "status": {"type": "string"}}}
# One event of a stream (``stream: true``): its ``data`` is a JSON chunk, ``[DONE]`` (OpenAI), or an Anthropic
# event named by ``event``.
SSE_EVENT = {"type": "object", "required": ["data"],
             "properties": {"data": {"type": "string"}, "event": {"type": "string"}}}
# What the HTTP layer can answer to any request, before a route sees it.
CONNECTION_ERRORS = (400, 408, 431)

BATCH_OBJECT: dict[str, Any] = {
    "type": "object", "required": ["id", "object", "endpoint", "input_file_id", "completion_window", "status",
                                   "created_at", "request_counts"],
    "properties": {"id": {"type": "string"}, "object": {"const": "batch"}, "status": {"enum": [
        "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"]},
        "request_counts": {"type": "object", "required": ["total", "completed", "failed"]}}}
MESSAGE_BATCH: dict[str, Any] = {
    "type": "object", "required": ["id", "type", "processing_status", "request_counts", "created_at", "expires_at"],
    "properties": {"id": {"type": "string"}, "type": {"const": "message_batch"},
                   "processing_status": {"enum": ["in_progress", "canceling", "ended"]}}}
ASYNC_REQUEST: dict[str, Any] = {
    "type": "object", "required": ["id", "object", "status", "url"],
    "properties": {"id": {"type": "string"}, "object": {"const": "async.request"}, "status": {"type": "string"},
                   "url": {"type": "string"}}}
"""An async request's status (``202``: queued with ``x-gateway-async: true``, or still running)."""

_SUCCESS: dict[str, dict[str, Any]] = {
    "chat_completions": {"type": "object", "required": ["id", "object", "choices"]},
    "embeddings": {"type": "object", "required": ["object", "data"]},
    "messages": {"type": "object", "required": ["id", "type", "role", "content"]},
    "count_tokens": {"type": "object", "required": ["input_tokens"],
                     "properties": {"input_tokens": {"type": "integer", "minimum": 0}}},
    "list_models": {"type": "object", "required": ["data"], "properties": {"data": {"type": "array"}}},
    "get_model": {"type": "object", "required": ["id", "object"]},
    "healthz": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "readyz": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "openapi_json": {"type": "object", "required": ["openapi", "paths"]},
    "create_file": FILE_OBJECT,
    "retrieve_file": FILE_OBJECT,
    "list_files": {"type": "object", "required": ["object", "data", "has_more", "first_id", "last_id"],
                   "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": FILE_OBJECT},
                                  "has_more": {"type": "boolean"}, "first_id": _NULLABLE_STRING,
                                  "last_id": _NULLABLE_STRING}},
    "delete_file": {"type": "object", "required": ["id", "object", "deleted"],
                    "properties": {"id": {"type": "string"}, "object": {"const": "file"},
                                   "deleted": {"type": "boolean"}}},
    "file_content": {"type": "string"},
    "metrics": {"type": "string", "description": "Prometheus text exposition format 0.0.4"},
    "ui_index": {"type": "string"},
    "ui_asset": {"type": "string"},
    "ui_overview": {"type": "object", "required": ["range", "group", "step", "series"]},
    "ui_requests": {"type": "object", "required": ["requests"]},
    "ui_request": {"type": "object", "required": ["request", "events", "verdicts"]},
    "ui_state": {"type": "object", "required": ["scopes", "breakers", "changes"]},
    "ui_auth": {"type": "object", "required": ["key_required"]},
    "create_batch": BATCH_OBJECT,
    "retrieve_batch": BATCH_OBJECT,
    "cancel_batch": BATCH_OBJECT,
    "list_batches": {"type": "object", "required": ["object", "data", "has_more", "first_id", "last_id"],
                     "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": BATCH_OBJECT},
                                    "has_more": {"type": "boolean"}, "first_id": _NULLABLE_STRING,
                                    "last_id": _NULLABLE_STRING}},
    "create_message_batch": MESSAGE_BATCH,
    "retrieve_message_batch": MESSAGE_BATCH,
    "cancel_message_batch": MESSAGE_BATCH,
    "list_message_batches": {"type": "object", "required": ["data", "has_more", "first_id", "last_id"],
                             "properties": {"data": {"type": "array", "items": MESSAGE_BATCH},
                                            "has_more": {"type": "boolean"}, "first_id": _NULLABLE_STRING,
                                            "last_id": _NULLABLE_STRING}},
    "message_batch_results": {"type": "string"},
    "delete_message_batch": {"type": "object", "required": ["id", "type"],
                             "properties": {"id": {"type": "string"}, "type": {"const": "message_batch_deleted"}}},
    "get_async": {"type": "object"},
}


def _add_schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in {**schema.pop("$defs", {}), model.__name__: schema}.items():
        if components.setdefault(name, definition) != definition:
            raise ValueError(f"two request models define the schema {name!r} differently: rename one")
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _error_schema(route: ApiRoute) -> dict[str, Any]:
    if route.error_shape == "openai":
        return ERROR_REF
    if route.error_shape == "anthropic":
        return ANTHROPIC_ERROR_REF
    return {"anyOf": [ERROR_REF, ANTHROPIC_ERROR_REF]}


def _responses(route: ApiRoute) -> dict[str, Any]:
    success: dict[str, Any] = {route.content_type: {"schema": _SUCCESS[route.handler]}}
    if route.stream:
        success["text/event-stream"] = {"schema": SSE_EVENT}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": success}}
    if "x-gateway-async" in route.headers or route.handler == "get_async":
        responses["202"] = {"description": "Accepted: an async request, queued or still running (see "
                                           "/v1/async/{job_id})",
                            "content": {"application/json": {"schema": ASYNC_REQUEST}}}
    for status in sorted({*route.errors, *CONNECTION_ERRORS}):
        if route.handler in ("healthz", "readyz") and status == 503:
            schema: dict[str, Any] = _SUCCESS[route.handler]  # a probe's status body, not an error
        else:
            schema = ERROR_REF if status in CONNECTION_ERRORS and status not in route.errors else _error_schema(route)
        responses[str(status)] = {"description": WHY[status], "content": {"application/json": {"schema": schema}}}
    return responses


def _operation(route: ApiRoute, components: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler,
        "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                       for name in path_params(route)]
        + [{"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
           for name in route.headers]
        + [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in route.query],
        "responses": _responses(route),
        "security": [{"apiKey": []}] if route.auth else [],
    }
    if route.request is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _add_schema(route.request, components)}}}
    elif route.form is not None:
        operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": dict(route.form)}}}
    return operation


def _with_connection_errors(operation: dict[str, Any]) -> dict[str, Any]:
    responses = dict(operation["responses"])
    for status in (*CONNECTION_ERRORS, 413):
        responses.setdefault(str(status), {"description": WHY[status],
                                           "content": {"application/json": {"schema": ERROR_REF}}})
    return {**operation, "responses": responses}


@cache
def openapi_document() -> dict[str, Any]:
    admin = admin_document()
    components: dict[str, Any] = {"Error": ERROR, "AnthropicError": ANTHROPIC_ERROR}
    for name, definition in admin["components"]["schemas"].items():
        if name != "Error":
            components[name] = definition
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, components)
    for path, operations in admin["paths"].items():
        paths[path] = {method: _with_connection_errors(op) for method, op in operations.items()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "LLM gateway", "version": "1",
                 "description": "Every route the gateway serves. Errors are in the shape of the route's "
                                "surface (OpenAI's, or Anthropic's on /v1/messages). An unknown path is a 404 "
                                "unknown_route, a known path asked with another method a 405 with Allow."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "a gateway API key"},
            **admin["components"]["securitySchemes"]}},
    }
