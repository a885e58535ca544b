"""The webhooks section: callback patterns checked at load, the secret as a reference, sane retry numbers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.config_webhooks import CallbackPattern, WebhooksConfig, parse_pattern
from schemas.secret_refs import referenced_secrets

SECRET = "env:GATEWAY_WEBHOOK_SECRET"


def test_defaults_allow_no_callbacks() -> None:
    config = WebhooksConfig()
    assert config.allow == [] and config.secret is None
    assert (config.max_attempts, config.first_backoff_s, config.max_backoff_s) == (8, 1.0, 300.0)
    assert (config.timeout_s, config.tolerance_s) == (10.0, 300)


def test_patterns_parse_with_default_and_explicit_ports() -> None:
    config = WebhooksConfig(allow=["https://hooks.example.com/", "https://*.Example.com/hooks/",
                                   "http://127.0.0.1:8080", "http://[::1]:9000/cb"], secret=SECRET)
    assert config.patterns() == [
        CallbackPattern("https", "hooks.example.com", 443, "/"),
        CallbackPattern("https", "example.com", 443, "/hooks/", wildcard=True),
        CallbackPattern("http", "127.0.0.1", 8080, "/"),
        CallbackPattern("http", "::1", 9000, "/cb"),
    ]


@pytest.mark.parametrize(("pattern", "says"), [
    ("ftp://hooks.example.com/", "scheme must be http or https"),
    ("hooks.example.com/", "scheme must be http or https"),
    ("https://user:pw@hooks.example.com/", "no user or password"),
    ("https://hooks.example.com/?token=1", "no query or fragment"),
    ("https://hooks.example.com/#x", "no query or fragment"),
    ("https:///path", "no host"),
    ("https://hooks.*.example.com/", "leftmost label"),
    ("https://*hooks.example.com/", "leftmost label"),
    ("https://*.com/", "at least two labels"),
    ("https://*/", "leftmost label"),
    ("https://hooks.example.com:99999/", "not a URL"),
    ("https://hooks.example.com/a/../b", "no '.' or '..' segment"),
    ("https://hooks.example.com/a%2fb", "percent-escape"),
    ("https://hooks.exa mple.com/", "printable ASCII"),
    ("https://bücher.example/", "printable ASCII"),
])
def test_bad_patterns_are_refused_with_a_reason(pattern: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WebhooksConfig(allow=["https://ok.example.com/", pattern], secret=SECRET)
    message = str(caught.value)
    assert says in message
    assert "allow.1:" in message  # names the entry


def test_parse_pattern_raises_value_error() -> None:
    with pytest.raises(ValueError, match="scheme"):
        parse_pattern("gopher://x.example.com/")


def test_secret_is_a_reference_never_a_value() -> None:
    with pytest.raises(ValidationError, match="env:NAME"):
        WebhooksConfig(secret="hunter2")
    config = WebhooksConfig(allow=["https://hooks.example.com/"], secret=SECRET)
    assert referenced_secrets(config) == {"batch": frozenset({"GATEWAY_WEBHOOK_SECRET"})}


def test_callbacks_need_a_secret() -> None:
    with pytest.raises(ValidationError, match="no secret is set"):
        WebhooksConfig(allow=["https://hooks.example.com/"])


@pytest.mark.parametrize("bad", [{"max_attempts": 0}, {"first_backoff_s": 0}, {"timeout_s": -1},
                                 {"tolerance_s": 0}, {"first_backoff_s": 10, "max_backoff_s": 5},
                                 {"retries": 3}])
def test_bad_numbers_and_unknown_keys_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        WebhooksConfig.model_validate(bad)


def test_the_model_is_frozen() -> None:
    config = WebhooksConfig()
    with pytest.raises(ValidationError):
        config.max_attempts = 3
