"""Each of ``gateway up``'s children gets what its kind needs: provider secrets only where the provider
stage runs, the hash salt only where redaction runs, nothing of the rest of the supervisor's environment."""

from __future__ import annotations

import pytest

from infra.child_env import KINDS, STAGES, child_env, identity_for, secrets_not_given, settings_variables
from infra.nats_permissions import IDENTITIES
from schemas.config import GatewayConfig

CONFIG = GatewayConfig.model_validate({
    "providers": {
        "openai": {"type": "openai", "api_key": "env:OPENAI_API_KEY"},
        "aws": {"type": "bedrock", "region": "eu-west-1", "access_key_id": "env:AWS_KEY_ID",
                "secret_access_key": "env:AWS_SECRET"},
        "odd": {"type": "anthropic", "api_key": "env:PYTHON_ANTHROPIC_KEY"},  # a name an allow-list passes
    },
    "redaction": {"operator": "hash", "hash_salt": "env:PII_SALT"},
})
PROVIDER_SECRETS = {"OPENAI_API_KEY": "sk-openai", "AWS_KEY_ID": "AKIA1", "AWS_SECRET": "aws-secret",
                    "PYTHON_ANTHROPIC_KEY": "sk-ant"}
ENVIRON = {
    "PATH": "/usr/bin", "HOME": "/home/op", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
    "TMPDIR": "/tmp/op", "SSL_CERT_FILE": "/etc/ca/private.pem", "PYTHONPATH": "/src", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4317",
    "GOMAXPROCS": "2",
    "GATEWAY_LOG_LEVEL": "DEBUG", "GATEWAY_ACK_WAIT_S": "3", "gateway_max_pending": "7",
    "GATEWAY_ENVELOPE_KEY": "a2V5", "GATEWAY_ADMIN_KEY_SHA256": "ab" * 32,
    "CLICKHOUSE_URL": "http://user:pw@ch:8123", "NATS_URL": "nats://n:4222",
    "GATEWAY_NATS_GOMAXPROCS": "1",  # read by the supervisor only
    "GATEWAY_NATS_CREDS": "/data/nats/creds/op-alice.nk",  # the supervisor's identity, no child's
    "AWS_PROFILE": "prod", "GITHUB_TOKEN": "ghp_x", "UNRELATED_SECRET": "s3cr3t",  # never passed
    "PII_SALT": "pepper",
    **PROVIDER_SECRETS,
}
RUN_PROVIDER = {"stages", "lane", "provider", "provider_lane"}


@pytest.mark.parametrize("kind", KINDS)
def test_provider_secrets_only_where_the_provider_stage_runs(kind: str) -> None:
    env = child_env(kind, CONFIG, ENVIRON)
    given = {name for name in PROVIDER_SECRETS if name in env}
    assert given == (set(PROVIDER_SECRETS) if kind in RUN_PROVIDER else set())
    assert ("PII_SALT" in env) == (kind in {"stages", "lane", "redaction", "redaction_lane"})


@pytest.mark.parametrize("kind", KINDS)
def test_nothing_outside_the_allow_list(kind: str) -> None:
    env = child_env(kind, CONFIG, ENVIRON)
    assert not {"AWS_PROFILE", "GITHUB_TOKEN", "UNRELATED_SECRET", "GATEWAY_NATS_GOMAXPROCS"} & env.keys()
    assert {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE"} <= env.keys()  # a private CA: TLS
    assert all(env[name] == ENVIRON[name] for name in env if name in ENVIRON)


def test_nats_server_gets_the_go_runtime_and_no_python_or_gateway_settings() -> None:
    env = child_env("nats-server", CONFIG, ENVIRON)
    assert env["GOMAXPROCS"] == "2"
    assert not [name for name in env if name.upper().startswith(("PYTHON", "OTEL_", "GATEWAY_"))]
    assert "NATS_URL" not in env and "CLICKHOUSE_URL" not in env


def test_the_mock_provider_is_a_python_program_outside_the_gateway() -> None:
    env = child_env("mock_provider", CONFIG, ENVIRON)
    assert env["PYTHONPATH"] == "/src"
    assert not [name for name in env if name.upper().startswith("GATEWAY_")] and "NATS_URL" not in env


@pytest.mark.parametrize("kind", ["sink", "ingress", "stages", "lane", *STAGES])
def test_gateway_processes_get_the_settings_they_read(kind: str) -> None:
    env = child_env(kind, CONFIG, ENVIRON)
    assert env["GATEWAY_LOG_LEVEL"] == "DEBUG" and env["GATEWAY_ACK_WAIT_S"] == "3"
    assert env["gateway_max_pending"] == "7"  # pydantic-settings reads names in any case
    assert env["NATS_URL"] == "nats://n:4222" and env["PYTHONPATH"] == "/src"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel:4317"
    assert "GOMAXPROCS" not in env


@pytest.mark.parametrize("kind", KINDS)
def test_settings_of_one_role_go_to_that_role_only(kind: str) -> None:
    env = child_env(kind, CONFIG, ENVIRON)
    # ingress seals the request into GW_REQ, redaction opens it and seals the map, the filter opens the map
    assert ("GATEWAY_ENVELOPE_KEY" in env) == (kind in {"ingress", "stages", "lane", "redaction", "output_filter",
                                                        "redaction_lane", "output_filter_lane", "batch"})
    assert ("GATEWAY_ADMIN_KEY_SHA256" in env) == (kind == "ingress")
    assert ("CLICKHOUSE_URL" in env) == (kind == "sink")
    assert "GATEWAY_NATS_CREDS" not in env  # one process's identity: never inherited


@pytest.mark.parametrize("kind", ["stages", "lane", "redaction", "output_filter"])
def test_presidio_stays_offline(kind: str) -> None:
    assert child_env(kind, CONFIG, ENVIRON)["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] == ""
    assert child_env(kind, CONFIG, {"TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "file:///psl"})[
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] == "file:///psl"


def test_a_referenced_variable_not_set_is_simply_absent() -> None:
    env = child_env("provider", CONFIG, {"PATH": "/usr/bin", "OPENAI_API_KEY": "sk-openai"})
    assert env == {"PATH": "/usr/bin", "OPENAI_API_KEY": "sk-openai"}


def test_settings_variables_are_derived_from_the_settings_model() -> None:
    names = settings_variables()
    assert {"NATS_URL", "GATEWAY_NATS_URL", "CLICKHOUSE_URL", "GATEWAY_CONFIG", "GATEWAY_ENVELOPE_KEY",
            "GATEWAY_ADMIN_KEY_SHA256", "GATEWAY_SINK_BATCH_MS"} <= names
    assert "GATEWAY_NATS_GOMAXPROCS" not in names


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown child kind"):
        child_env("workers", CONFIG, ENVIRON)


def test_secrets_not_given_at_start_and_after_a_change() -> None:
    environ = {k: v for k, v in ENVIRON.items() if k != "AWS_SECRET"}
    assert secrets_not_given(CONFIG, CONFIG, environ) == {"provider": ["AWS_SECRET"]}
    assert secrets_not_given(CONFIG, CONFIG, ENVIRON) == {}
    changed = CONFIG.model_copy(update={"providers": {
        **CONFIG.providers,
        "new": CONFIG.providers["openai"].model_copy(update={"api_key": "env:UNRELATED_SECRET"})}})
    # set in the supervisor's environment, but no running process was given it
    assert secrets_not_given(changed, CONFIG, ENVIRON) == {"provider": ["UNRELATED_SECRET"]}


@pytest.mark.parametrize("kind", KINDS)
def test_no_child_inherits_nats_credentials_or_a_lane(kind: str) -> None:
    env = child_env(kind, CONFIG, {**ENVIRON, "GATEWAY_NATS_CREDS": "/data/nats/creds/admin.nk",
                                   "GATEWAY_LANE": "batch"})
    assert "GATEWAY_NATS_CREDS" not in env  # gateway up sets each child's to its own identity's
    assert "GATEWAY_LANE" not in env  # and each stage process's lane by its kind


def test_each_child_kind_has_its_own_nats_identity() -> None:
    assert {kind: identity_for(kind) for kind in KINDS} == {
        "nats-server": None, "mock_provider": None, "sink": "sink", "ingress": "ingress", "stages": "stages",
        "lane": "stages", "batch": "batch", **{stage: stage for stage in STAGES},
        **{f"{stage}_lane": stage for stage in STAGES}}
    assert {identity_for(kind) for kind in KINDS} - {None} <= set(IDENTITIES)
