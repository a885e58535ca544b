"""Schemathesis against a live gateway: every operation of the document it serves at ``/openapi.json``, with
valid and invalid data (positive and negative generation), with the right key, with no key and with a wrong
one. No 5xx, no hang (every answer within a timeout), every answer conforms to the document (status,
content type, body schema) and every refusal is in the documented error shape.

The budget is fixed and deterministic (``derandomize``: the same examples every run): ``EXAMPLES`` per
operation and mode. The counts are printed (``-s``) and asserted; the README's "Edge fuzzing" has a run's.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, start_gateway

pytestmark = pytest.mark.integration

ADMIN_KEY = "sk-admin-fuzz"
EXAMPLES = 15  # per operation and mode: ~1,000 requests in all
TIMEOUT_S = 15.0  # an answer later than this is a hang
# A model the gateway serves, per route: random names are all 404s, and the chain would never run.
SERVED_MODELS = {"/v1/chat/completions": "gpt-4o-mini", "/v1/embeddings": "text-embedding-3-small",
                 "/v1/messages": "claude-3-5-haiku", "/v1/models/{id}": None}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class Tally:
    operations: set[str] = field(default_factory=set)
    examples: Counter[str] = field(default_factory=Counter)  # by mode
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    no_negative: set[str] = field(default_factory=set)  # operations without anything to make invalid

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        modes = ", ".join(f"{m} {n}" for m, n in sorted(self.examples.items()))
        return (f"edge fuzz: {len(self.operations)} operations, {sum(self.examples.values())} requests "
                f"({modes}), {len(self.failures)} failures; statuses {statuses}")


@pytest.fixture(scope="module")
def gateway_with_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    config = gateway_config(free_port())
    gw = start_gateway(root, config, replicas=["stages=1"],
                       extra_env={"GATEWAY_ADMIN_KEY_SHA256": hashlib.sha256(ADMIN_KEY.encode()).hexdigest()})
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def schema(gateway_with_admin: RunningGateway) -> Any:
    # fetched, then loaded as a dict: loaded from its URL, schemathesis would leave out GET /openapi.json itself
    document = httpx.get(f"{gateway_with_admin.base_url}/openapi.json", timeout=10).raise_for_status().json()
    return schemathesis.openapi.from_dict(document)


def _error_schema(document: dict[str, Any], operation: Any, status: int) -> dict[str, Any] | None:
    """The documented schema of ``status`` if it is an error shape (a probe's 503 body is not)."""
    response = operation.definition.raw["responses"].get(str(status))
    if response is None:
        return None
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    refs = [schema.get("$ref")] + [s.get("$ref") for s in schema.get("anyOf", [])]
    if not any(ref in ("#/components/schemas/Error", "#/components/schemas/AnthropicError") for ref in refs):
        return None
    return {**schema, "components": document["components"]}


@dataclass(frozen=True)
class Run:
    """One pass over every operation: a generation mode and the key each operation gets."""

    name: str
    mode: GenerationMode
    key: Callable[[str], str | None]
    expect: Callable[[Any, httpx.Response], str | None] | None = None


def _run(schema: Any, base_url: str, tally: Tally, run: Run) -> None:
    for result in schema.get_all_operations():
        operation = result.ok()
        tally.operations.add(f"{operation.method.upper()} {operation.path}")
        _fuzz(operation, schema.raw_schema, base_url, tally, run)


def _fuzz(operation: Any, document: dict[str, Any], base_url: str, tally: Tally, run: Run) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    token = run.key(operation.path)
    checks = [*CHECKS, negative_data_rejection] if run.mode == GenerationMode.NEGATIVE else CHECKS

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=run.mode))
    def fuzz(case: Any) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
            headers = {}  # the headers are the invalid part (the key's among them): sent as generated
        elif case.headers:
            for name in [n for n in case.headers if n.lower() in ("authorization", "x-api-key")]:
                del case.headers[name]
        tally.examples[run.name] += 1
        served = SERVED_MODELS.get(operation.path)
        if served and run.mode == GenerationMode.POSITIVE and isinstance(case.body, dict) \
                and len(str(case.body.get("model"))) % 2 == 0:
            case.body["model"] = served  # about half the valid bodies name a served model: the whole chain runs
        try:
            response = case.call(base_url=base_url, headers=headers, timeout=TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a timeout or a dropped connection is a finding
            tally.failures.append(f"{label}: no answer: {exc!r}")
            return
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - a group of check failures
            found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
            what = "; ".join(f"{type(e).__name__}: {e}"[:400] for e in found)
            tally.failures.append(f"{label} -> {response.status_code} ({run.name}): {what} [{case.as_curl_command()}]")
        if response.status_code >= 300:
            error_schema = _error_schema(document, operation, response.status_code)
            if error_schema is None and not operation.path.endswith(("healthz", "readyz")):
                tally.failures.append(f"{label}: undocumented status {response.status_code}")
            elif error_schema is not None:
                try:
                    jsonschema.validate(response.json(), error_schema)
                except (ValueError, jsonschema.ValidationError) as exc:
                    tally.failures.append(f"{label} -> {response.status_code}: not the error shape: {exc}")
        if run.expect is not None and (why := run.expect(operation, response)):
            tally.failures.append(f"{label}: {why}")

    try:
        fuzz()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body): negative mode has no case
        tally.no_negative.add(label)


def _good(path: str) -> str:
    return ADMIN_KEY if path.startswith("/admin/") else DEMO_KEY


def _needs_auth(operation: Any) -> bool:
    return bool(operation.definition.raw.get("security"))


def test_every_operation_under_fuzzing(schema: Any, gateway_with_admin: RunningGateway) -> None:
    tally = Tally()
    base_url = gateway_with_admin.base_url
    _run(schema, base_url, tally, Run("positive", GenerationMode.POSITIVE, _good))
    _run(schema, base_url, tally, Run("negative", GenerationMode.NEGATIVE, _good))

    def refused_without_a_key(operation: Any, response: httpx.Response) -> str | None:
        if _needs_auth(operation) and response.status_code not in (401, 400, 413, 431):
            return f"answered {response.status_code} without a valid key"
        return None

    _run(schema, base_url, tally, Run("no key", GenerationMode.POSITIVE, lambda path: None, refused_without_a_key))
    _run(schema, base_url, tally, Run("wrong key", GenerationMode.POSITIVE, lambda path: "sk-wrong",
                                      refused_without_a_key))
    print(tally.summary())
    for failure in tally.failures[:20]:
        print(failure)
    documented = {f"{method.upper()} {path}" for path, ops in schema.raw_schema["paths"].items() for method in ops}
    assert tally.operations == documented
    assert not tally.failures, f"{len(tally.failures)} failures; first: {tally.failures[:5]}"
    assert not [s for s in tally.statuses if s >= 500]
    assert 200 in tally.statuses and 401 in tally.statuses and 400 in tally.statuses
    # the gateway still serves
    response = httpx.get(f"{base_url}/readyz", timeout=10)
    assert response.status_code == 200, response.text
