"""The one table of the public routes ingress serves (the admin API has its own, ``admin_api.ROUTES``).

The router (``Ingress.__call__``) dispatches from it and the OpenAPI document (``ingress/openapi.py``,
served at ``/openapi.json``) is built from it: a route is served only if it is in this table, so it
cannot be served undocumented. ``handler`` names the ``Ingress`` method that serves the route.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel

from ingress.anthropic_surface.models import CountTokensRequest, MessagesRequest
from schemas.files import PURPOSES
from schemas.openai import ChatCompletionRequest, EmbeddingsRequest

OPENAPI_PATH = "/openapi.json"
ErrorShape = Literal["openai", "anthropic", "either"]

# What the chain itself can answer to an accepted request, besides the edge's own refusals.
CHAIN_ERRORS = (400, 401, 403, 404, 408, 413, 429, 502, 503, 504)


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str  # exact, or an OpenAPI template (``/v1/files/{file_id}``): a parameter is one path segment
    handler: str  # the ``Ingress`` method serving it: ``async (scope, receive, send)``
    summary: str
    request: type[BaseModel] | None = None
    # the statuses the route answers besides 200, each in ``error_shape``
    errors: tuple[int, ...] = ()
    error_shape: ErrorShape = "openai"
    auth: bool = True
    stream: bool = False  # 200 may be ``text/event-stream``
    headers: tuple[str, ...] = ()  # optional request headers the route reads (documented)
    query: tuple[str, ...] = ()  # optional query parameters the route reads (documented)
    # a body that is not JSON: its media type and schema (``multipart/form-data`` uploads)
    form: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)
    content_type: str = "application/json"  # of the 200 answer
    slashes: bool = False  # the path's last parameter may hold slashes (a model id: ``org/model``)

    @property
    def template(self) -> bool:
        return "{" in self.path

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """For a template route: its path as a regex, a named group per parameter."""
        regex = _PARAM.sub(r"(?P<\1>[^/]+)", re.escape(self.path).replace(r"\{", "{").replace(r"\}", "}"))
        if self.slashes:
            regex = regex.removesuffix("[^/]+)") + ".+)"
        return re.compile(f"^{regex}$")

    def match(self, path: str) -> dict[str, str] | None:
        """The path's parameters if ``path`` is this template route's, else ``None``."""
        found = self.pattern.match(path) if self.template else None
        return found.groupdict() if found else None


_PARAM = re.compile(r"\{(\w+)\}")
_META = ("x-gateway-timeout-ms", "x-gateway-user", "x-gateway-tags", "x-gateway-async", "x-gateway-callback-url")
_BATCH_ERRORS = (400, 401, 404, 408, 413, 503)


class BatchCreateRequest(BaseModel):
    """``POST /v1/batches`` (OpenAI's fields)."""

    input_file_id: str
    endpoint: Literal["/v1/chat/completions", "/v1/embeddings"]
    completion_window: Literal["24h"]
    metadata: dict[str, str] | None = None


class MessageBatchRequest(BaseModel):
    custom_id: str
    params: MessagesRequest


class MessageBatchCreateRequest(BaseModel):
    """``POST /v1/messages/batches`` (Anthropic's fields)."""

    requests: list[MessageBatchRequest]

ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute("POST", "/v1/chat/completions", "chat_completions", "OpenAI Chat Completions (JSON or SSE)",
             ChatCompletionRequest, CHAIN_ERRORS, stream=True, headers=_META),
    ApiRoute("POST", "/v1/embeddings", "embeddings", "OpenAI Embeddings", EmbeddingsRequest, CHAIN_ERRORS,
             headers=_META),
    ApiRoute("POST", "/v1/messages", "messages", "Anthropic Messages (JSON or SSE)", MessagesRequest,
             CHAIN_ERRORS, "anthropic", stream=True, headers=("anthropic-version", *_META)),
    ApiRoute("POST", "/v1/messages/count_tokens", "count_tokens", "Anthropic token count (an offline estimate)",
             CountTokensRequest, (400, 401, 408, 413), "anthropic", headers=("anthropic-version",)),
    ApiRoute("GET", "/v1/models", "list_models", "The models the caller's key may use (Anthropic's shape "
             "with an anthropic-version header)", errors=(401,), error_shape="either",
             headers=("anthropic-version",)),
    ApiRoute("GET", "/v1/models/{id}", "get_model", "One model the caller's key may use", errors=(401, 404),
             slashes=True),
    ApiRoute("POST", "/v1/files", "create_file", "OpenAI Files: upload a file (multipart: file, purpose); "
             "batch files are validated line by line", errors=(400, 401, 408, 413, 415, 503),
             form={"type": "object", "required": ["file", "purpose"], "properties": {
                 "file": {"type": "string", "contentMediaType": "application/octet-stream"},
                 "purpose": {"type": "string", "enum": list(PURPOSES)}}}),
    ApiRoute("GET", "/v1/files", "list_files", "OpenAI Files: the caller's tenant's files",
             errors=(400, 401, 503), query=("purpose", "limit", "after", "order")),
    ApiRoute("GET", "/v1/files/{file_id}", "retrieve_file", "OpenAI Files: one file's object",
             errors=(401, 404, 503)),
    ApiRoute("DELETE", "/v1/files/{file_id}", "delete_file", "OpenAI Files: delete a file",
             errors=(401, 404, 503)),
    ApiRoute("GET", "/v1/files/{file_id}/content", "file_content", "OpenAI Files: a file's bytes, as uploaded",
             errors=(401, 404, 503), content_type="application/octet-stream"),
    ApiRoute("POST", "/v1/batches", "create_batch", "OpenAI Batch: run a batch input file's requests through the "
             "chain", BatchCreateRequest, _BATCH_ERRORS),
    ApiRoute("GET", "/v1/batches", "list_batches", "OpenAI Batch: the caller's tenant's batches, newest first",
             errors=(400, 401, 503), query=("limit", "after")),
    ApiRoute("GET", "/v1/batches/{batch_id}", "retrieve_batch", "OpenAI Batch: one batch (status, counts, files)",
             errors=(401, 404, 503)),
    ApiRoute("POST", "/v1/batches/{batch_id}/cancel", "cancel_batch", "OpenAI Batch: stop a batch (lines in the "
             "chain finish)", errors=(401, 404, 409, 503)),
    ApiRoute("POST", "/v1/messages/batches", "create_message_batch", "Anthropic Message Batches: create",
             MessageBatchCreateRequest, _BATCH_ERRORS, "anthropic", headers=("anthropic-version",)),
    ApiRoute("GET", "/v1/messages/batches", "list_message_batches", "Anthropic Message Batches: list, newest first",
             errors=(400, 401, 503), error_shape="anthropic", query=("limit", "after_id", "before_id")),
    ApiRoute("GET", "/v1/messages/batches/{message_batch_id}", "retrieve_message_batch",
             "Anthropic Message Batches: one batch", errors=(401, 404, 503), error_shape="anthropic"),
    ApiRoute("POST", "/v1/messages/batches/{message_batch_id}/cancel", "cancel_message_batch",
             "Anthropic Message Batches: cancel", errors=(401, 404, 409, 503), error_shape="anthropic"),
    ApiRoute("GET", "/v1/messages/batches/{message_batch_id}/results", "message_batch_results",
             "Anthropic Message Batches: the results (JSONL) of an ended batch", errors=(400, 401, 404, 503),
             error_shape="anthropic", content_type="application/x-jsonl"),
    ApiRoute("DELETE", "/v1/messages/batches/{message_batch_id}", "delete_message_batch",
             "Anthropic Message Batches: delete an ended batch and its files", errors=(400, 401, 404, 503),
             error_shape="anthropic"),
    ApiRoute("GET", "/v1/async/{job_id}", "get_async", "An async request's result (its status while it runs: 202)",
             errors=(400, 401, 403, 404, 408, 413, 429, 502, 503, 504)),
    ApiRoute("GET", "/healthz", "healthz", "The process is up and connected to its broker", errors=(503,),
             auth=False),
    ApiRoute("GET", "/readyz", "readyz", "A request can travel the whole chain now", errors=(503,), auth=False),
    ApiRoute("GET", OPENAPI_PATH, "openapi_json", "This document (every route, the admin API's included)", auth=False),
    ApiRoute("GET", "/ui", "ui_index", "The dashboard (the admin key, when one is configured, is asked in the page)",
             auth=False, content_type="text/html"),
    ApiRoute("GET", "/ui/{asset}", "ui_asset", "The dashboard's script and style", errors=(404,), auth=False,
             content_type="text/plain"),
    ApiRoute("GET", "/ui/api/overview", "ui_overview", "Dashboard: requests, errors, tokens, cost and latency "
             "percentiles per time bucket and group", errors=(400, 401, 500, 503), auth=False,
             query=("range", "group", "tenant", "model")),
    ApiRoute("GET", "/ui/api/requests", "ui_requests", "Dashboard: the request log (redacted bodies)",
             errors=(400, 401, 500, 503), auth=False, query=("range", "tenant", "model", "status", "q")),
    ApiRoute("GET", "/ui/api/requests/{request_id}", "ui_request", "Dashboard: one request, its stage timeline "
             "and guardrail verdicts", errors=(400, 401, 404, 500, 503), auth=False),
    ApiRoute("GET", "/ui/api/auth", "ui_auth", "Dashboard: whether the admin key is needed", auth=False),
    ApiRoute("GET", "/ui/api/state", "ui_state", "Dashboard: budgets and rate limits, breakers, config changes",
             errors=(401, 500, 503), auth=False),
    ApiRoute("GET", "/metrics", "metrics", "Prometheus metrics of every gateway process (the admin key, when "
             "one is configured)", errors=(401, 503), auth=False, content_type="text/plain"),
)

def path_params(route: ApiRoute) -> list[str]:
    return _PARAM.findall(route.path)


def allowed_methods(path: str) -> list[str]:
    """The methods of the routes at ``path`` (for a 405's ``Allow``); empty: no such route."""
    return sorted({r.method for r in ROUTES if r.path == path or r.match(path) is not None})


def template_route(method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
    """The template route serving ``method path`` and the path's parameters, if any."""
    for route in TEMPLATE_ROUTES:
        if route.method == method:
            params = route.match(path)
            if params is not None:
                return route, params
    return None


TEMPLATE_ROUTES = tuple(r for r in ROUTES if r.template)
