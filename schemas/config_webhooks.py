"""The ``webhooks`` section of the config: where async results may be POSTed, how they are signed and retried.

A caller of an async request names its ``x-gateway-callback-url``; the gateway POSTs the result there only
when the URL matches one of ``allow`` (empty: no callbacks at all). A pattern is a URL prefix: scheme, host
(exact, or ``*`` for one leftmost label), port (explicit or the scheme's default) and a path prefix that
ends on a segment boundary. Patterns are checked here, at load; ``stages.webhooks.url_allowed`` matches::

    webhooks:
      allow: ["https://hooks.example.com/", "https://*.example.com/hooks/", "http://127.0.0.1:8080/"]
      secret: env:GATEWAY_WEBHOOK_SECRET
      max_attempts: 8
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.secret_refs import ResolvedBy, check_secret_ref

WEBHOOK_SECRET = Annotated[str | None, AfterValidator(check_secret_ref), ResolvedBy("batch")]
"""The HMAC secret, an ``env:NAME`` reference like every secret of the file; only the batch process (which
sends the webhooks) is given the variable."""

DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
"""A DNS name (lower case, ASCII: an IDN is written in its ``xn--`` form) or an IPv4 address."""
_IPV6 = re.compile(r"^[0-9a-f:.]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class CallbackPattern:
    """One ``allow`` entry, parsed. ``wildcard``: the pattern's host was ``*.<host>``, one label more than ``host``."""

    scheme: str
    host: str
    port: int
    path: str
    wildcard: bool = False


def valid_host(host: str) -> bool:
    """A lower-case DNS name, IPv4 address or (unbracketed) IPv6 address."""
    return bool(HOST_NAME.match(host) or (":" in host and _IPV6.match(host)))


def parse_pattern(pattern: str) -> CallbackPattern:
    """``pattern`` parsed, or a ``ValueError`` that says what is wrong with it."""
    if not pattern.isascii() or any(c.isspace() or not c.isprintable() for c in pattern):
        raise ValueError(f"{pattern!r}: only printable ASCII without spaces (write an IDN host as xn--...)")
    try:
        parts = urlsplit(pattern)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{pattern!r}: not a URL ({exc})") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"{pattern!r}: the scheme must be http or https")
    if "@" in parts.netloc:
        raise ValueError(f"{pattern!r}: no user or password in a callback pattern")
    if parts.query or parts.fragment or pattern.endswith(("?", "#")):
        raise ValueError(f"{pattern!r}: a pattern is a prefix of scheme, host, port and path; no query or fragment")
    host = parts.hostname or ""
    wildcard = host.startswith("*.")
    bare = host[2:] if wildcard else host
    if not valid_host(bare):
        raise ValueError(f"{pattern!r}: {host or 'no host'!r} is not a host name or address "
                         "('*' may stand only for the whole leftmost label: https://*.example.com/)")
    if wildcard and (not HOST_NAME.match(bare) or bare.count(".") < 1 or bare.replace(".", "").isdigit()):
        raise ValueError(f"{pattern!r}: '*.' needs a domain of at least two labels after it (*.example.com)")
    path = parts.path or "/"
    if "\\" in path or any(seg in (".", "..") for seg in path.split("/")) or "%" in path:
        raise ValueError(f"{pattern!r}: the path may hold no '.' or '..' segment, backslash or percent-escape")
    return CallbackPattern(scheme=parts.scheme, host=bare, port=port or DEFAULT_PORTS[parts.scheme],
                           path=path, wildcard=wildcard)


class WebhooksConfig(_Strict):
    """``webhooks:``: the callback allow-list, the signing secret, and the delivery's retries and timeouts.

    Each attempt waits at most ``timeout_s``; between attempts the sender waits a full-jitter exponential
    backoff from ``first_backoff_s`` capped at ``max_backoff_s`` (a ``Retry-After`` within that cap wins).
    ``tolerance_s`` is the replay window receivers are told to use (``stages.webhooks.verify``).
    """

    allow: list[str] = Field(default_factory=list, description="callback URL prefixes; empty: no callbacks")
    secret: WEBHOOK_SECRET = Field(default=None, description="env:NAME of the HMAC-SHA256 signing secret")
    max_attempts: int = Field(default=8, ge=1, le=50)
    first_backoff_s: float = Field(default=1.0, gt=0)
    max_backoff_s: float = Field(default=300.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    tolerance_s: int = Field(default=300, ge=1)

    @field_validator("allow")
    @classmethod
    def _patterns_parse(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                parse_pattern(pattern)
            except ValueError as exc:
                raise ValueError(f"allow.{i}: {exc}") from None
        return patterns

    @model_validator(mode="after")
    def _consistent(self) -> WebhooksConfig:
        if self.max_backoff_s < self.first_backoff_s:
            raise ValueError(f"max_backoff_s ({self.max_backoff_s}) is below first_backoff_s ({self.first_backoff_s})")
        if self.allow and self.secret is None:
            raise ValueError("allow lists callback URLs but no secret is set: webhooks are always signed "
                             "(secret: env:NAME)")
        return self

    def patterns(self) -> list[CallbackPattern]:
        """``allow``, parsed (every entry parses: checked at load)."""
        return [parse_pattern(p) for p in self.allow]


_FORBIDDEN_IN_PATH = ("\\", "%2e", "%2f", "%5c")  # lower case; a dot segment or a slash in disguise


# -- the allow-list ---------------------------------------------------------------------------------------

def url_allowed(url: str, patterns: Iterable[str]) -> bool:
    """Whether ``url`` may receive a webhook: http(s), no user info, parsable, and within one of
    ``patterns`` (scheme, host, port and path prefix on a segment boundary; see ``schemas.config_webhooks``).
    A pattern that does not parse matches nothing."""
    target = _callback_target(url)
    if target is None:
        return False
    for pattern in patterns:
        try:
            parsed = parse_pattern(pattern)
        except ValueError:
            continue
        if _matches(target, parsed):
            return True
    return False


def _callback_target(url: str) -> CallbackPattern | None:
    """``url`` as the scheme, host, port and path it would be sent to; None for anything doubtful."""
    if not isinstance(url, str) or not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme not in DEFAULT_PORTS or "@" in parts.netloc or not valid_host(host):
        return None
    path = parts.path or "/"
    lowered = path.lower()
    if not path.startswith("/") or any(bad in lowered for bad in _FORBIDDEN_IN_PATH):
        return None
    if any(segment in (".", "..") for segment in path.split("/")):
        return None
    return CallbackPattern(scheme=parts.scheme, host=host, port=port or DEFAULT_PORTS[parts.scheme], path=path)


def _matches(target: CallbackPattern, pattern: CallbackPattern) -> bool:
    if target.scheme != pattern.scheme or target.port != pattern.port:
        return False
    if pattern.wildcard:
        label, dot, rest = target.host.partition(".")
        if not (dot and label and rest == pattern.host):
            return False
    elif target.host != pattern.host:
        return False
    if pattern.path.endswith("/"):
        return target.path.startswith(pattern.path)
    return target.path == pattern.path or target.path.startswith(pattern.path + "/")
