"""Loading the YAML config file into ``GatewayConfig``, with errors that name the bad path.

What the config's models cannot check alone (that each guardrail spec builds: its class exists and
takes its settings) is a ``ConfigCheck`` every loader is given: ``infra/bootstrap.py`` supplies the
gateway's (``bootstrap.check_config``) and its ``load_config``/``parse_config_text`` pass it, so this
module needs nothing from ``stages/``. The argument is required: no loader can forget it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas.config import GatewayConfig
from schemas.errors import ConfigInvalid


class ConfigError(ConfigInvalid):
    """A config that cannot be loaded or applied; the message starts with where it came from (a file
    path, a KV revision) and names every bad path in it."""


ConfigCheck = Callable[[GatewayConfig], list[str]]
"""What a loaded config must also pass: its problems as ``path: message`` lines (none: it passes)."""

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


def parse_config(data: Any, source: str = "<config>", *, check: ConfigCheck) -> GatewayConfig:
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
    problems = check(config)
    if problems:
        raise ConfigError(f"{source}: invalid config\n" + "\n".join(f"  {p}" for p in problems))
    return config


def parse_config_text(text: str, source: str = "<config>", *, check: ConfigCheck) -> GatewayConfig:
    """The config from its YAML text; ``source`` (a file path, a KV revision) starts every error."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    return parse_config(data, source, check=check)


def load_config(path: Path, *, check: ConfigCheck) -> GatewayConfig:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    return parse_config_text(text, str(path), check=check)


def version_of(text: str) -> str:
    """A config version: the first 12 hex digits of the SHA-256 of its YAML text (hot reload)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_version(path: Path) -> str:
    """A short content hash: which config served a request (``version_of`` the file's text)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
