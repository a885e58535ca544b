"""The admin API (``/admin/v1``): virtual keys and team/tenant budgets over HTTP, the same operations as
``gateway keys`` and ``gateway budgets`` (both call ``infra.governance_admin.GovernanceAdmin``).

Authenticated by an admin key (``Authorization: Bearer <admin key>``) whose SHA-256 is one of the
config's named ``admin.keys``, or ``GATEWAY_ADMIN_KEY_SHA256`` (else the config's ``admin.key_sha256``);
with none, every operation answers 404 ``admin_api_disabled`` saying how to enable it. Each change is
audited as claimed by ``admin-api:<the key's name>`` (an unnamed key: its fingerprint, the first 12 hex
digits of its SHA-256), published as ingress's NATS identity; the chain records
``admin-api:<name> via nats:ingress`` (``schemas/audit_actor.py``). Errors are in the OpenAI shape with the field at
fault in ``param``. ``ROUTES`` is the one table of operations: the router and the OpenAPI document
(``ingress/admin_openapi.py``, served at ``/admin/v1/openapi.json``) are both built from it.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from nats.js import JetStreamContext
from pydantic import BaseModel, ValidationError

from infra.governance_admin import ConfigFacts, GovernanceAdmin, key_view
from infra.nats_identity import ANONYMOUS
from ingress.asgi import Receive, Scope, Send, read_body, send_error, send_json
from ingress.config_view import ConfigView
from ingress.intake import bearer
from schemas.audit_actor import admin_actor, admin_fingerprint
from schemas.config import hash_api_key
from schemas.errors import AuthenticationFailed, GatewayError, InvalidRequest, NotFound, ServiceUnavailable
from schemas.governance_admin import BudgetSet, KeyCreate, KeyRotate, KeyUpdate

ADMIN_PREFIX = "/admin/v1"
OPENAPI_PATH = f"{ADMIN_PREFIX}/openapi.json"
MAX_BODY = 64 * 1024

Params = dict[str, str]
Handler = Callable[[GovernanceAdmin, Params, Any, Scope], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # OpenAPI template, e.g. /admin/v1/keys/{id}
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    status: int = 200
    query: tuple[str, ...] = ()

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")


async def _create(admin: GovernanceAdmin, _p: Params, body: KeyCreate, _s: Scope) -> tuple[int, Any]:
    issued = await admin.create_key(body)
    return 201, {**key_view(issued.key, admin.clock(), issued.revision), "secret": issued.secret}


async def _list(admin: GovernanceAdmin, _p: Params, _b: None, scope: Scope) -> tuple[int, Any]:
    query = _query(scope)
    keys = await admin.list_keys(tenant=query.get("tenant"), team=query.get("team"))
    now = admin.clock()
    return 200, {"object": "list", "data": [key_view(k, now) for k in keys]}


async def _show(admin: GovernanceAdmin, params: Params, _b: None, _s: Scope) -> tuple[int, Any]:
    return 200, await admin.show_key(params["id"])


async def _update(admin: GovernanceAdmin, params: Params, body: KeyUpdate, _s: Scope) -> tuple[int, Any]:
    key, revision = await admin.update_key(params["id"], body)
    return 200, key_view(key, admin.clock(), revision)


async def _revoke(admin: GovernanceAdmin, params: Params, _b: None, _s: Scope) -> tuple[int, Any]:
    key, revision = await admin.revoke_key(params["id"])
    return 200, key_view(key, admin.clock(), revision)


async def _rotate(admin: GovernanceAdmin, params: Params, body: KeyRotate, _s: Scope) -> tuple[int, Any]:
    issued = await admin.rotate_key(params["id"], body)
    return 200, {**key_view(issued.key, admin.clock(), issued.revision), "secret": issued.secret}


def _level(params: Params) -> tuple[Any, str]:
    kind = params["kind"]
    if kind not in ("team", "tenant"):
        raise NotFound(f"Unknown budget level {kind!r}: use /admin/v1/budgets/tenant/<id> or /team/<id>.",
                       param="kind", code="unknown_level")
    return kind, params["id"]


async def _budget_set(admin: GovernanceAdmin, params: Params, body: BudgetSet, _s: Scope) -> tuple[int, Any]:
    kind, level_id = _level(params)
    await admin.set_level(kind, level_id, body)
    return 200, await admin.show_level(kind, level_id)


async def _budget_show(admin: GovernanceAdmin, params: Params, _b: None, _s: Scope) -> tuple[int, Any]:
    kind, level_id = _level(params)
    return 200, await admin.show_level(kind, level_id)


ROUTES: tuple[Route, ...] = (
    Route("POST", f"{ADMIN_PREFIX}/keys", _create, "Create a key; the answer carries its secret, once",
          KeyCreate, 201),
    Route("GET", f"{ADMIN_PREFIX}/keys", _list, "List keys (never a secret or a hash)", query=("tenant", "team")),
    Route("GET", f"{ADMIN_PREFIX}/keys/{{id}}", _show, "A key with its limits, spend and this minute's use"),
    Route("PATCH", f"{ADMIN_PREFIX}/keys/{{id}}", _update, "Change a key's fields (null clears a limit)", KeyUpdate),
    Route("DELETE", f"{ADMIN_PREFIX}/keys/{{id}}", _revoke, "Revoke a key (idempotent)"),
    Route("POST", f"{ADMIN_PREFIX}/keys/{{id}}/rotate", _rotate,
          "Issue a new secret; the old one works through the grace period", KeyRotate),
    Route("PUT", f"{ADMIN_PREFIX}/budgets/{{kind}}/{{id}}", _budget_set,
          "Set a team's or tenant's limits and access rules (kind: team or tenant)", BudgetSet),
    Route("GET", f"{ADMIN_PREFIX}/budgets/{{kind}}/{{id}}", _budget_show,
          "A team's or tenant's limits, spend and this minute's use (kind: team or tenant)"),
)


def _query(scope: Scope) -> dict[str, str]:
    raw: bytes = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1")))


# What a path id may hold to be part of a KV key (``key.<id>``, ``team.<id>``): nothing else can exist.
_KV_ID = re.compile(r"^[-_=A-Za-z0-9]+(\.[-_=A-Za-z0-9]+)*$")


def _checked(params: Params) -> Params:
    """The path's ids, each one that can exist (another was a 500 from the KV store: an invalid key)."""
    for name, value in params.items():
        if not _KV_ID.match(value):
            raise NotFound(f"No {name} {value!r} exists: ids are letters, digits, '_', '-', '=' and inner dots.",
                           param=name, code="not_found")
    return params


def validation_error(exc: ValidationError) -> InvalidRequest:
    """The first error of a body, naming its field (``param``)."""
    first = exc.errors()[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    message = str(first["msg"]).removeprefix("Value error, ")
    return InvalidRequest(f"{param}: {message}" if param else message, param=param, code="invalid_field")


class AdminApi:
    """The ``/admin/v1`` routes of one ingress process."""

    def __init__(self, js: Callable[[], JetStreamContext | None], view: Callable[[], ConfigView],
                 admin_key_sha256: str | None = None,
                 clock: Callable[[], float] = time.time, identity: str = ANONYMOUS) -> None:
        """``identity``: this process's NATS identity (``ingress`` under ``gateway up``), the subject its
        audit entries go out on; only ``ingress`` is believed about which admin key called."""
        self._js = js
        self._view = view
        self._admin_key_sha256 = admin_key_sha256
        self._clock = clock
        self._identity = identity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if path == OPENAPI_PATH and method == "GET":
                from ingress.admin_openapi import openapi_document

                await send_json(send, 200, openapi_document())
                return
            caller = self._authorize(scope)
            route, params = self._match(method, path)
            body = await self._body(scope, receive, route)
            status, payload = await route.handler(self._admin(caller), params, body, scope)
        except GatewayError as exc:
            await send_error(send, exc.info())
            return
        await send_json(send, status, payload)

    def _admin_keys(self) -> list[tuple[str, str]]:
        """(caller name, key SHA-256) of every admin key: the config's named keys, then the single key
        (``GATEWAY_ADMIN_KEY_SHA256``, else ``admin.key_sha256``), named by its fingerprint."""
        admin = self._view().config.admin
        keys = [(k.name, k.key_sha256) for k in admin.keys]
        single = self._admin_key_sha256 or admin.key_sha256
        if single:
            keys.append((admin_fingerprint(single), single))
        return keys

    def keys_configured(self) -> bool:
        """Whether any admin key is configured (what it guards is open otherwise)."""
        return bool(self._admin_keys())

    def authorize_if_enabled(self, scope: Scope) -> str | None:
        """The admin key's name when admin keys are configured (401 without a right one); None when none
        is (then what this guards is open: the demo setup)."""
        return self._authorize(scope) if self._admin_keys() else None

    def _authorize(self, scope: Scope) -> str:
        """The name of the admin key the caller sent (its config name, or its fingerprint)."""
        keys = self._admin_keys()
        if not keys:
            raise NotFound("The admin API is off. Enable it with the SHA-256 of an admin key: "
                           "`gateway keys hash <admin key>`, then add it to admin.keys (with a name) or set "
                           "admin.key_sha256 in the config, or GATEWAY_ADMIN_KEY_SHA256 in ingress's environment.",
                           code="admin_api_disabled")
        token = bearer(scope)
        if not token:
            raise AuthenticationFailed("Missing admin key: send it as 'Authorization: Bearer <admin key>'.",
                                       code="missing_admin_key")
        sent = hash_api_key(token)
        found = [name for name, expected in keys if hmac.compare_digest(sent, expected)]  # every one compared
        if not found:
            raise AuthenticationFailed("Incorrect admin key (a gateway API key is not an admin key).",
                                       code="invalid_admin_key")
        return found[0]

    def _match(self, method: str, path: str) -> tuple[Route, Params]:
        allowed: list[str] = []
        for route in ROUTES:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, _checked(found.groupdict())
            allowed.append(route.method)
        if allowed:
            raise InvalidRequest(f"{method} is not an operation on {path} (allowed: {', '.join(allowed)}).",
                                 code="method_not_allowed", status_code=405)
        raise NotFound(f"Unknown admin route: {method} {path} (see {OPENAPI_PATH}).", code="unknown_route")

    async def _body(self, scope: Scope, receive: Receive, route: Route) -> Any:
        if route.body is None:
            return None
        raw = await read_body(scope, receive, MAX_BODY)
        try:
            data = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"The body is not JSON: {exc}.", code="invalid_json") from None
        if not isinstance(data, dict):
            raise InvalidRequest("The body must be a JSON object.", code="invalid_json")
        try:
            return route.body.model_validate(data)
        except ValidationError as exc:
            raise validation_error(exc) from None

    def _admin(self, caller: str) -> GovernanceAdmin:
        js = self._js()
        if js is None:
            raise ServiceUnavailable("Ingress is not connected to its message broker yet; retry shortly.",
                                     code="broker_unavailable", retry_after_s=1.0)
        config = self._view().config
        facts = ConfigFacts(profiles={"default", *config.guardrail_profiles},
                            config_key_ids=[k.id for k in config.keys])
        return GovernanceAdmin(js, facts, self._clock, identity=self._identity, actor=admin_actor(caller))
