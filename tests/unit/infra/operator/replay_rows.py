"""Shared by the replay unit tests: a logged row as ``gateway sql`` returns it, and a config."""

from __future__ import annotations

from typing import Any

import orjson

from infra.bootstrap import parse_config
from infra.operator.launcher import gateway_config
from infra.operator.replay_record import LoggedRequest, logged_from_row
from schemas.config import GatewayConfig

REQUEST_ID = "01a24332-3ea6-7a2d-89b7-911f011393db"


def row(**change: Any) -> dict[str, Any]:
    """One ``row_query`` row of a chat request that mock-openai answered."""
    base: dict[str, Any] = {
        "request_id": REQUEST_ID, "ts": "2026-12-04T22:00:00.123000Z", "age_s": 60, "tenant": "acme",
        "api_key_id": "demo", "user": "", "tags": {"team": "search"}, "endpoint": "chat.completions",
        "model_requested": "gpt-4o-mini", "model_served": "gpt-4o-mini", "provider": "mock-openai",
        "stream": False, "status_code": 200, "error_type": "", "error_code": "",
        "route_path": "targets.children.0", "experiment": "", "variant": "", "config_version": "abc123def456",
        "attempts": 1, "cost_usd": "0.000012300", "latency_ms": 41.5, "prompt_tokens": 12,
        "completion_tokens": 9, "batch_id": "",
        "request_body": orjson.dumps({"model": "gpt-4o-mini",
                                      "messages": [{"role": "user", "content": "Hello <PERSON_1>"}]}).decode(),
    }
    base.update(change)
    return base


def logged(**change: Any) -> LoggedRequest:
    return logged_from_row(row(**change))


def config(**change: Any) -> GatewayConfig:
    return parse_config({**gateway_config(8090), **change}, "test")
