"""Loading the YAML config file into ``GatewayConfig``, with errors that name the bad path."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas.config import GatewayConfig
from schemas.errors import ConfigInvalid
from stages.guardrails.runner import GuardrailSet, SpecError


class ConfigError(ConfigInvalid):
    """A config that cannot be loaded or applied; the message starts with where it came from (a file
    path, a KV revision) and names every bad path in it."""


_NODE_TAGS = {"single", "fallback", "loadbalance", "conditional", "experiment"}


def config_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the dotted path in the file: the routing-tree node types that
    pydantic adds for tagged unions (``route.fallback.children.0.single.model``) are not in the file."""
    parts: list[str] = []
    for i, item in enumerate(loc):
        after = loc[i - 1] if i else None
        if item in _NODE_TAGS and (after in ("route", "default") or isinstance(after, int)):
            continue
        if isinstance(item, str) and item.startswith("function-"):
            continue
        parts.append(str(item))
    return ".".join(parts)


def parse_config(data: Any, source: str = "<config>") -> GatewayConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            path = config_path(err["loc"])
            message = str(err["msg"]).removeprefix("Value error, ")
            # cross-reference checks name their own path in the message
            lines.append(f"  {path}: {message}" if path else f"  {message}")
        raise ConfigError(f"{source}: invalid config\n" + "\n".join(lines)) from None
    problems = guardrail_problems(config)
    if problems:
        raise ConfigError(f"{source}: invalid config\n" + "\n".join(f"  {p}" for p in problems))
    return config


def guardrail_problems(config: GatewayConfig) -> list[str]:
    """Build every guardrail list of the config once (the top-level one and each profile's own) and
    return what cannot be built, as ``path: message`` lines (unknown guardrail, settings refused by the
    guardrail's class, redact on one that cannot)."""
    lists = [("guardrails", config.guardrails)] + [
        (f"guardrail_profiles.{name}.guardrails", profile.guardrails)
        for name, profile in config.guardrail_profiles.items() if profile.guardrails is not None]
    problems: list[str] = []
    for prefix, specs in lists:
        try:
            GuardrailSet(specs)
        except SpecError as exc:
            problems.extend(f"{path}: {message}" for path, message in exc.under(prefix).problems)
    return problems


def parse_config_text(text: str, source: str = "<config>") -> GatewayConfig:
    """The config from its YAML text; ``source`` (a file path, a KV revision) starts every error."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    return parse_config(data, source)


def load_config(path: Path) -> GatewayConfig:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    return parse_config_text(text, str(path))


def version_of(text: str) -> str:
    """A config version: the first 12 hex digits of the SHA-256 of its YAML text (hot reload)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_version(path: Path) -> str:
    """A short content hash: which config served a request (``version_of`` the file's text)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
