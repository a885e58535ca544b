"""The one error hierarchy of the gateway.

Every error carries the HTTP ``status_code``, the OpenAI error ``type`` and ``code``, and whether
it is ``retryable``: ``status_code``, ``code`` and ``retryable`` on each instance (an argument
overrides the class's default, ``ProviderError(..., status_code=429)``), ``type`` on the class.
``to_body()`` is the single mapping to the OpenAI error body used at every edge; ``ErrorInfo`` is the
same error as it travels over NATS and in replies (its field has the same name, ``status_code``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from schemas.wire import Message


class ErrorInfo(Message, frozen=True, kw_only=True):
    """An error as it travels in envelopes, replies and events."""

    status_code: int
    type: str
    code: str | None = None
    message: str
    param: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None
    kind: str = "GatewayError"

    def to_body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class GatewayError(Exception):
    # the class's default; each instance has its own (``status_code=`` overrides it), as ``ErrorInfo`` does
    status_code: int = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = "internal_error"
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        retryable: bool | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.status_code = status_code if status_code is not None else type(self).status_code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after_s = retry_after_s
        # the HTTP status the provider answered with, when this error is a provider's answer
        self.upstream_status: int | None = None

    def info(self) -> ErrorInfo:
        return ErrorInfo(
            status_code=self.status_code,
            type=self.type,
            code=self.code,
            message=self.message,
            param=self.param,
            retryable=self.retryable,
            retry_after_s=self.retry_after_s,
            kind=type(self).__name__,
        )

    def to_body(self) -> dict[str, Any]:
        return self.info().to_body()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status_code}, {self.code!r}, {self.message!r})"


class InvalidRequest(GatewayError):
    status_code = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class AuthenticationFailed(GatewayError):
    status_code = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status_code = 403
    type = "permission_error"
    default_code = "permission_denied"


class NotFound(GatewayError):
    status_code = 404
    type = "invalid_request_error"
    default_code = "not_found"


class Conflict(GatewayError):
    """The change met a newer state (another writer was first) or an id that is taken: read again, retry."""

    status_code = 409
    type = "invalid_request_error"
    default_code = "conflict"


class RequestTimeout(GatewayError):
    """The client did not send its request (headers or body) in time: the connection is closed."""

    status_code = 408
    type = "invalid_request_error"
    default_code = "request_timeout"


class RequestHeadersTooLarge(GatewayError):
    """The request's header section is over the edge's limit (size or count): the connection is closed."""

    status_code = 431
    type = "invalid_request_error"
    default_code = "headers_too_large"


class PayloadTooLarge(GatewayError):
    status_code = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(GatewayError):
    status_code = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    default_retryable = True


class QuotaExceeded(GatewayError):
    """A budget (key, team or tenant) has no room left for the request until its period resets."""

    status_code = 429
    type = "insufficient_quota"
    default_code = "budget_exceeded"


class ContentBlocked(GatewayError):
    """A guardrail (input or output) refused the content."""

    status_code = 400
    type = "invalid_request_error"
    default_code = "content_blocked"


class ProviderError(GatewayError):
    """The upstream provider answered with an error; ``status_code`` is what we return."""

    status_code = 502
    type = "upstream_error"
    default_code = "provider_error"


class ProviderTimeout(GatewayError):
    status_code = 504
    type = "timeout_error"
    default_code = "provider_timeout"
    default_retryable = True


class ProviderUnavailable(GatewayError):
    """Connection refused or reset, DNS failure: nothing reached the provider."""

    status_code = 502
    type = "upstream_error"
    default_code = "provider_unreachable"
    default_retryable = True


class AllTargetsFailed(GatewayError):
    status_code = 502
    type = "upstream_error"
    default_code = "all_targets_failed"


class StreamInterrupted(GatewayError):
    status_code = 502
    type = "upstream_error"
    default_code = "stream_interrupted"


class DeadlineExceeded(GatewayError):
    status_code = 504
    type = "timeout_error"
    default_code = "deadline_exceeded"


class ServiceUnavailable(GatewayError):
    status_code = 503
    type = "api_error"
    default_code = "service_unavailable"
    default_retryable = True


class Overloaded(ServiceUnavailable):
    """The gateway sheds load: it answers at once rather than queue past what it can serve in time."""

    default_code = "gateway_overloaded"


class AuditNotRecorded(ServiceUnavailable):
    """A control-plane change was made but its audit entry could not be stored in the GW_AUDIT stream
    (NATS unreachable, stream missing): the change stands, unaudited, and the message says which it was."""

    default_code = "audit_not_recorded"


class ClientGone(GatewayError):
    """The caller's connection ended before the answer (its ingress process stopped): recorded, never
    sent (nobody is left to receive it). 499, as proxies record a client that closed the request."""

    status_code = 499
    type = "client_error"
    default_code = "client_gone"


class InternalError(GatewayError):
    status_code = 500
    type = "api_error"
    default_code = "internal_error"


class ConfigInvalid(GatewayError):
    """The operator's configuration cannot be used: the config file or a published version
    (``infra.config.ConfigError``), a guardrail spec in it (``stages.guardrails.runner.SpecError``), the
    guardrail a spec names (``stages.guardrails.registry.UnknownGuardrail``).

    Met while validating a config (``gateway config check``, ``gateway config apply``, hot reload), the message
    names the bad path and the config is refused; the old one stays. Never a caller's mistake: met while
    serving a request it is the gateway's, 500 (e.g. ``provider_secret_missing``: a provider's ``env:``
    variable not set in the provider process, which then tries the next target). Not a ``ValueError``:
    no pydantic validator raises one (the loader turns pydantic's errors into a ``ConfigError`` after
    validating)."""

    status_code = 500
    type = "api_error"
    default_code = "config_invalid"
