"""The one table of the public routes ingress serves (the admin API has its own, ``admin_api.ROUTES``).

The router (``Ingress.__call__``) dispatches from it and the OpenAPI document (``ingress/openapi.py``,
served at ``/openapi.json``) is built from it: a route is served only if it is in this table, so it
cannot be served undocumented. ``handler`` names the ``Ingress`` method that serves the route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from ingress.anthropic_surface.models import CountTokensRequest, MessagesRequest
from schemas.openai import ChatCompletionRequest, EmbeddingsRequest

OPENAPI_PATH = "/openapi.json"
ErrorShape = Literal["openai", "anthropic", "either"]

# What the chain itself can answer to an accepted request, besides the edge's own refusals.
CHAIN_ERRORS = (400, 401, 403, 404, 408, 413, 429, 502, 503, 504)


@dataclass(frozen=True, slots=True)
class ApiRoute:
    method: str
    path: str  # exact, or an OpenAPI template (``/v1/models/{id}``): the id is all after the prefix, slashes too
    handler: str  # the ``Ingress`` method serving it: ``async (scope, receive, send)``
    summary: str
    request: type[BaseModel] | None = None
    # the statuses the route answers besides 200, each in ``error_shape``
    errors: tuple[int, ...] = ()
    error_shape: ErrorShape = "openai"
    auth: bool = True
    stream: bool = False  # 200 may be ``text/event-stream``
    headers: tuple[str, ...] = ()  # optional request headers the route reads (documented)

    @property
    def template(self) -> bool:
        return "{" in self.path

    @property
    def prefix(self) -> str:
        """For a template route: the fixed part before its one parameter."""
        return self.path[: self.path.index("{")]


_META = ("x-gateway-timeout-ms", "x-gateway-user", "x-gateway-tags")

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
    ApiRoute("GET", "/v1/models/{id}", "get_model", "One model the caller's key may use", errors=(401, 404)),
    ApiRoute("GET", "/healthz", "healthz", "The process is up and connected to its broker", errors=(503,),
             auth=False),
    ApiRoute("GET", "/readyz", "readyz", "A request can travel the whole chain now", errors=(503,), auth=False),
    ApiRoute("GET", OPENAPI_PATH, "openapi_json", "This document (every route, the admin API's included)", auth=False),
)

_PARAM = re.compile(r"\{(\w+)\}")


def path_params(route: ApiRoute) -> list[str]:
    return _PARAM.findall(route.path)


def allowed_methods(path: str) -> list[str]:
    """The methods of the routes at ``path`` (for a 405's ``Allow``); empty: no such route."""
    return sorted({r.method for r in ROUTES
                   if r.path == path or (r.template and path.startswith(r.prefix) and path != r.prefix)})
