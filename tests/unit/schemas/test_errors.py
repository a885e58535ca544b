"""The error hierarchy: status/type/code per class, the OpenAI body, and the NATS round trip."""

from __future__ import annotations

import pytest

from infra.config import ConfigError
from schemas import errors as e
from schemas.errors import ErrorInfo, GatewayError
from schemas.wire import ValidationError, decode, encode
from stages.guardrails.registry import UnknownGuardrail
from stages.guardrails.runner import SpecError

# class, HTTP status, OpenAI type, default code, retryable by default
TABLE: list[tuple[type[GatewayError], int, str, str, bool]] = [
    (e.GatewayError, 500, "api_error", "internal_error", False),
    (e.InvalidRequest, 400, "invalid_request_error", "invalid_request", False),
    (e.AuthenticationFailed, 401, "authentication_error", "invalid_api_key", False),
    (e.PermissionDenied, 403, "permission_error", "permission_denied", False),
    (e.NotFound, 404, "invalid_request_error", "not_found", False),
    (e.PayloadTooLarge, 413, "invalid_request_error", "request_too_large", False),
    (e.RateLimited, 429, "rate_limit_error", "rate_limit_exceeded", True),
    (e.ContentBlocked, 400, "invalid_request_error", "content_blocked", False),
    (e.ProviderError, 502, "upstream_error", "provider_error", False),
    (e.ProviderTimeout, 504, "timeout_error", "provider_timeout", True),
    (e.ProviderUnavailable, 502, "upstream_error", "provider_unreachable", True),
    (e.AllTargetsFailed, 502, "upstream_error", "all_targets_failed", False),
    (e.StreamInterrupted, 502, "upstream_error", "stream_interrupted", False),
    (e.DeadlineExceeded, 504, "timeout_error", "deadline_exceeded", False),
    (e.ServiceUnavailable, 503, "api_error", "service_unavailable", True),
    (e.Overloaded, 503, "api_error", "gateway_overloaded", True),
    (e.ClientGone, 499, "client_error", "client_gone", False),
    (e.InternalError, 500, "api_error", "internal_error", False),
    (e.ConfigInvalid, 500, "api_error", "config_invalid", False),
    # the operator's config, where it is loaded and where its guardrails are built
    (ConfigError, 500, "api_error", "config_invalid", False),
    (UnknownGuardrail, 500, "api_error", "unknown_guardrail", False),
]
IDS = [row[0].__name__ for row in TABLE]


@pytest.mark.parametrize(("cls", "status", "type_", "code", "retryable"), TABLE, ids=IDS)
def test_each_error_defaults(cls: type[GatewayError], status: int, type_: str, code: str, retryable: bool) -> None:
    err = cls("boom")
    assert isinstance(err, GatewayError) and isinstance(err, Exception)
    assert (err.status_code, err.type, err.code, err.retryable) == (status, type_, code, retryable)
    assert err.param is None and err.retry_after_s is None
    assert str(err) == "boom"


@pytest.mark.parametrize(("cls", "status", "type_", "code", "retryable"), TABLE, ids=IDS)
def test_to_body_shape(cls: type[GatewayError], status: int, type_: str, code: str, retryable: bool) -> None:
    body = cls("went wrong", param="messages").to_body()
    assert body == {"error": {"message": "went wrong", "type": type_, "param": "messages", "code": code}}
    assert list(body) == ["error"]
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_to_body_keeps_null_param() -> None:
    assert e.InvalidRequest("x").to_body() == {
        "error": {"message": "x", "type": "invalid_request_error", "param": None, "code": "invalid_request"}
    }


def test_overrides() -> None:
    err = e.ProviderError("upstream 429", code="upstream_rate_limited", status_code=429, retryable=True,
                          retry_after_s=2.5, param="model")
    assert (err.status_code, err.code, err.retryable, err.retry_after_s, err.param) == (
        429, "upstream_rate_limited", True, 2.5, "model")
    assert type(err).status_code == 502  # the class default is untouched
    assert not hasattr(err, "status")  # one name for the status, on the class and the instance
    assert e.ProviderError("again").status_code == 502


@pytest.mark.parametrize("cls", [ConfigError, SpecError, UnknownGuardrail])
def test_config_errors_are_gateway_errors(cls: type[GatewayError]) -> None:
    """The config errors are in the one hierarchy, not ``ValueError``s beside it."""
    assert issubclass(cls, e.ConfigInvalid) and issubclass(cls, GatewayError)
    assert not issubclass(cls, ValueError)


def test_spec_error_lists_its_problems() -> None:
    err = SpecError([("use", "unknown guardrail 'x'"), ("", "no path")])
    assert (err.status_code, err.type, err.code, err.retryable) == (500, "api_error", "guardrail_spec_invalid", False)
    assert str(err) == err.message == "use: unknown guardrail 'x'; no path"
    assert err.info().kind == "SpecError" and err.under("guardrails").code == "guardrail_spec_invalid"


def test_retryable_false_overrides_default_true() -> None:
    assert e.RateLimited("x", retryable=False).retryable is False


def test_info_fields() -> None:
    info = e.RateLimited("slow down", param="p", retry_after_s=3.0).info()
    assert info == ErrorInfo(status_code=429, type="rate_limit_error", code="rate_limit_exceeded",
                             message="slow down", param="p", retryable=True, retry_after_s=3.0, kind="RateLimited")
    assert info.to_body() == e.RateLimited("slow down", param="p").to_body()


@pytest.mark.parametrize("cls", [row[0] for row in TABLE], ids=IDS)
@pytest.mark.parametrize("retry_after_s", [None, 0.5, 30.0])
def test_info_survives_the_wire(cls: type[GatewayError], retry_after_s: float | None) -> None:
    original = cls("msg", param="messages.0", retry_after_s=retry_after_s)
    wire = decode(encode(original.info()), ErrorInfo)
    assert wire == original.info()
    assert wire.kind == cls.__name__
    assert wire.to_body() == original.to_body()


def test_overridden_values_travel() -> None:
    original = e.ProviderError("upstream 503", code="upstream_503", status_code=503, retryable=True,
                               retry_after_s=1.0)
    wire = decode(encode(original.info()), ErrorInfo)
    assert (wire.status_code, wire.code, wire.retryable, wire.retry_after_s) == (503, "upstream_503", True, 1.0)


def test_error_info_is_frozen_and_strict() -> None:
    info = e.NotFound("x").info()
    with pytest.raises(AttributeError):
        info.code = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        decode(encode(info)[:-1] + b',"extra":1}', ErrorInfo)


def test_repr() -> None:
    assert repr(e.NotFound("nope", code="model_not_found")) == "NotFound(404, 'model_not_found', 'nope')"
