"""The admin API's OpenAPI 3.1 document, built from ``admin_api.ROUTES`` and the request models' JSON
schemas (``schemas/governance_admin.py``): every operation the router serves is in it."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from pydantic import BaseModel

from ingress.admin_api import OPENAPI_PATH, ROUTES

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
}
ERRORS = {
    "400": "a field is invalid (param names it)",
    "401": "missing or incorrect admin key",
    "404": "unknown id, or the admin API is off (code admin_api_disabled)",
    "409": "an id that is taken, or a revision that moved (read again and retry)",
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


@cache
def openapi_document() -> dict[str, Any]:
    components: dict[str, Any] = {"Error": ERROR}
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__.strip("_"),
            "security": [{"adminKey": []}],
            "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                           for name in re.findall(r"\{(\w+)\}", route.path)]
            + [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
               for name in route.query],
            "responses": {
                str(route.status): {"description": "OK",
                                    "content": {"application/json": {"schema": {"type": "object"}}}},
                **{code: {"description": why,
                          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                   for code, why in ERRORS.items()},
            },
        }
        if route.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": _schema(route.body, components)}}}
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    paths[OPENAPI_PATH] = {"get": {"summary": "This document", "operationId": "openapi",
                                   "responses": {"200": {"description": "OK"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "LLM gateway admin API", "version": "1"},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"adminKey": {"type": "http", "scheme": "bearer"}}},
    }
