"""The config file: the shipped one loads, bad ones are refused with the path of the problem."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.bootstrap import load_config, parse_config
from infra.config import ConfigError, config_version
from infra.operator.cli import cmd_config_check
from schemas.config import AnthropicProvider, GatewayConfig, OpenAIProvider, hash_api_key
from schemas.errors import ConfigInvalid
from schemas.routing import SingleNode, walk

SHIPPED = Path(__file__).resolve().parents[3] / "config" / "gateway.yaml"


def base() -> dict[str, Any]:
    return {
        "providers": {"p1": {"type": "openai", "base_url": "http://p1/v1"}},
        "models": {"m": {"targets": [{"provider": "p1", "model": "m-1"}]}},
    }


def refused(data: Any) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_config(data, "test.yaml")
    message = str(raised.value)
    assert message.startswith("test.yaml")
    return message


# -- the shipped config ---------------------------------------------------------------------------


def test_shipped_config_loads_and_routes_every_alias() -> None:
    config = load_config(SHIPPED)
    assert config.models, "the shipped config routes no model"
    for alias, route in config.models.items():
        targets = [node for _, node in walk(route.tree, alias) if isinstance(node, SingleNode)]
        assert targets
        for target in targets:
            assert target.provider in config.providers, f"{alias} -> {target.provider}"
            assert target.price is not None, f"{alias} -> {target.model} is unpriced"


def test_shipped_config_demo_keys_are_the_documented_ones() -> None:
    config = load_config(SHIPPED)
    assert [k.key_sha256 for k in config.keys] == [hash_api_key("sk-gateway-demo"),
                                                   hash_api_key("sk-gateway-strict")]
    assert config.guardrails_for(hash_api_key("sk-gateway-strict"), "gpt-4o-mini").profile == "strict"
    assert config.guardrails_for(hash_api_key("sk-gateway-demo"), "hr-assistant").profile == "sensitive"
    assert config.guardrails_for(hash_api_key("sk-gateway-demo"), "gpt-4o-mini").profile == "default"


def test_only_profiles_a_key_or_model_names_are_active() -> None:
    config = load_config(SHIPPED)
    assert sorted(config.active_profiles) == ["default", "sensitive", "strict"]
    data = yaml.safe_load(SHIPPED.read_text())
    data["keys"] = [{**k, "guardrail_profile": None} for k in data["keys"]]
    data["models"] = {alias: {**m, "guardrail_profile": None} for alias, m in data["models"].items()}
    unused = parse_config(data)
    assert list(unused.active_profiles) == ["default"] and "strict" in unused.profiles


def test_shipped_config_writes_no_raw_secret() -> None:
    raw = yaml.safe_load(SHIPPED.read_text())
    for provider in raw["providers"].values():
        assert provider.get("api_key") is None or str(provider["api_key"]).startswith("env:")


# -- references and strictness --------------------------------------------------------------------


def test_minimal_config() -> None:
    config = parse_config(base())
    assert isinstance(config.providers["p1"], OpenAIProvider)
    assert config.retry.attempts_per_target == 2


@pytest.mark.parametrize("empty", [None, {}])
def test_empty_config_is_the_defaults(empty: Any) -> None:
    assert parse_config(empty) == GatewayConfig()


def test_unknown_provider_names_the_path() -> None:
    data = base()
    data["models"]["m"]["targets"].append({"provider": "nope", "model": "x"})
    message = refused(data)
    assert "models.m.targets.1.provider" in message
    assert "'nope'" in message and "p1" in message


def test_unknown_provider_in_a_later_alias() -> None:
    data = base()
    data["models"]["other"] = {"targets": [{"provider": "ghost", "model": "x"}]}
    assert "models.other.targets.0.provider" in refused(data)


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        (lambda d: d.update(surprise=1), "surprise"),
        (lambda d: d.update(retry={"attempts": 3}), "retry.attempts"),
        (lambda d: d["models"]["m"]["targets"][0].update(weight=2), "models.m.targets.0.weight"),
        (lambda d: d["models"]["m"].update(fallback=True), "models.m.fallback"),
        (lambda d: d.update(limits={"max_body_bytes": 4096, "max_bytes": 1}), "limits.max_bytes"),
        (lambda d: d["providers"]["p1"].update(timeout=3), "providers.p1.openai.timeout"),
    ],
)
def test_unknown_keys_refused_with_path(patch: Any, path: str) -> None:
    data = base()
    patch(data)
    message = refused(data)
    assert f"{path}: Extra inputs are not permitted" in message


def test_unknown_provider_type_refused() -> None:
    data = base()
    data["providers"]["p1"]["type"] = "carrier-pigeon"
    assert "providers.p1" in refused(data)


@pytest.mark.parametrize("api_key", ["sk-live-abc123", "OPENAI_API_KEY", "env:", "env:1BAD", "env:A-B", "ENV:X"])
def test_api_key_must_be_an_env_reference(api_key: str) -> None:
    data = base()
    data["providers"]["p1"]["api_key"] = api_key
    message = refused(data)
    assert "providers.p1.openai.api_key" in message
    assert "env:NAME" in message


def test_refused_secret_is_not_echoed() -> None:
    data = base()
    data["providers"]["p1"]["api_key"] = "sk-live-abc123"
    assert "sk-live-abc123" not in refused(data)


@pytest.mark.parametrize("api_key", ["env:OPENAI_API_KEY", "env:_x1"])
def test_api_key_env_reference_accepted(api_key: str) -> None:
    data = base()
    data["providers"]["p2"] = {"type": "anthropic", "base_url": "http://p2", "api_key": api_key}
    provider = parse_config(data).providers["p2"]
    assert isinstance(provider, AnthropicProvider) and provider.api_key == api_key


def test_duplicate_key_ids_refused() -> None:
    data = base()
    key = {"id": "k", "key_sha256": hash_api_key("a"), "tenant": "t"}
    data["keys"] = [key, {**key, "key_sha256": hash_api_key("b")}]
    assert "key ids must be unique" in refused(data)


def test_key_hash_must_be_lowercase_sha256_hex() -> None:
    data = base()
    data["keys"] = [{"id": "k", "key_sha256": "sk-gateway-demo", "tenant": "t"}]
    assert "keys.0.key_sha256" in refused(data)


def test_route_needs_a_target() -> None:
    data = base()
    data["models"]["m"]["targets"] = []
    assert "models.m.targets" in refused(data)


def test_top_level_must_be_a_mapping() -> None:
    assert "top level must be a mapping" in refused(["not", "a", "mapping"])


def test_every_problem_is_listed() -> None:
    data = base()
    data["surprise"] = 1
    data["retry"] = {"attempts_per_target": 0}
    message = refused(data)
    assert "surprise:" in message and "retry.attempts_per_target:" in message


# -- hash_api_key ---------------------------------------------------------------------------------


def test_hash_api_key() -> None:
    assert hash_api_key("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert hash_api_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_api_key("sk-a") != hash_api_key("sk-a ")
    assert len(hash_api_key("é")) == 64


# -- files ----------------------------------------------------------------------------------------


def test_load_config_from_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(base()))
    assert list(load_config(path).models) == ["m"]


def test_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("models: [unclosed\n  - x: : :\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(path) in str(raised.value) and "not valid YAML" in str(raised.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_invalid_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("surprise: 1\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).startswith(str(path)) and "surprise" in str(raised.value)


def test_config_version_follows_content(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("version: 1\n")
    first = config_version(path)
    assert len(first) == 12 and int(first, 16) >= 0
    assert config_version(path) == first
    path.write_text("version: 1\n# edited\n")
    second = config_version(path)
    assert second != first
    path.write_text("version: 1\n")
    assert config_version(path) == first


# -- guardrail specs ------------------------------------------------------------------------------


def test_shipped_config_guardrails_build() -> None:
    from infra.bootstrap import check_config

    assert check_config(load_config(SHIPPED)) == []


def test_the_loader_runs_the_check_it_is_given() -> None:
    from infra import config as config_files

    seen: list[GatewayConfig] = []

    def check(config: GatewayConfig) -> list[str]:
        seen.append(config)
        return ["models.m: not today"]

    with pytest.raises(ConfigError, match=r"^test.yaml: invalid config\n  models.m: not today$"):
        config_files.parse_config(base(), "test.yaml", check=check)
    assert len(seen) == 1
    assert config_files.parse_config(base(), check=lambda _config: []) == parse_config(base())


def test_unknown_guardrail_is_refused_with_its_path() -> None:
    message = refused({**base(), "guardrails": [{"use": "prompt_injection"}, {"use": "x"}]})
    assert "  guardrails.1.use: unknown guardrail 'x' (registered: " in message
    assert "prompt_injection" in message.split("registered:")[1]


def test_a_refused_config_is_a_config_error_of_the_one_hierarchy() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({**base(), "guardrails": [{"use": "x"}]}, "test.yaml")
    assert isinstance(raised.value, ConfigInvalid)
    assert (raised.value.status_code, raised.value.type, raised.value.code) == (500, "api_error", "config_invalid")
    assert raised.value.message == str(raised.value)
    assert str(raised.value).startswith("test.yaml: invalid config\n  guardrails.0.use: unknown guardrail 'x'")


def test_config_check_prints_the_problem_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({**base(), "guardrails": [{"use": "secrets", "action": "redact"}]}))
    assert cmd_config_check(argparse.Namespace(path=str(path))) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gateway: {path}: invalid config\n")
    assert "  guardrails.0.action: guardrail 'secrets' cannot redact; use action flag or block" in err


def test_bad_settings_in_a_profile_are_refused_with_their_path() -> None:
    message = refused({**base(), "guardrail_profiles": {"strict": {"guardrails": [
        {"use": "prompt_injection", "settings": {"tool_result_weight": -1}},
        {"use": "blocked_terms", "action": "block", "settings": {"terms": ["ok", " "], "typo": True}},
    ]}}})
    assert "guardrail_profiles.strict.guardrails.0.settings.tool_result_weight: " in message
    assert "guardrail_profiles.strict.guardrails.1.settings.terms: terms [1] are blank" in message
    assert "guardrail_profiles.strict.guardrails.1.settings.typo: Extra inputs are not permitted" in message


def test_redact_on_a_guardrail_that_cannot_is_refused() -> None:
    message = refused({**base(), "guardrails": [{"use": "secrets", "action": "redact"}]})
    assert "guardrails.0.action: guardrail 'secrets' cannot redact" in message


def test_duplicate_guardrail_names_are_refused() -> None:
    message = refused({**base(), "guardrails": [{"use": "secrets"}, {"use": "secrets"}]})
    assert "guardrails.1.name: two guardrails are named 'secrets'" in message


def test_valid_guardrail_specs_load() -> None:
    config = parse_config({**base(), "guardrails": [
        {"use": "secrets", "action": "block"},
        {"use": "blocked_terms", "name": "codenames", "settings": {"terms": ["falcon"], "patterns": {"t": "T-\\d+"}}},
        {"use": "response_format", "settings": {"draft": "7"}},
    ], "guardrail_profiles": {"lenient": {"guardrails": []}, "inherits": {}}}, "test.yaml")
    assert [g.name for g in config.profile("inherits").guardrails] == ["secrets", "codenames", "response_format"]
    assert config.profile("lenient").guardrails == []
