"""The admin API's OpenAPI document: 3.1, every operation the router serves, valid JSON schemas."""

from __future__ import annotations

import jsonschema

from ingress.admin_api import OPENAPI_PATH, ROUTES
from ingress.admin_openapi import openapi_document


def test_every_route_is_documented() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    served = {(r.path, r.method.lower()) for r in ROUTES} | {(OPENAPI_PATH, "get")}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert documented == served


def test_bodies_reference_valid_schemas_and_errors_are_documented() -> None:
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    for route in ROUTES:
        operation = doc["paths"][route.path][route.method.lower()]
        assert {str(route.status), "400", "401", "404", "409"} <= set(operation["responses"])
        if route.body is not None:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{route.body.__name__}"
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    assert "tenant" in schemas["KeyCreate"]["required"]
