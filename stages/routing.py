"""Routing: a model alias becomes an ordered plan of targets (first is preferred, rest are fallbacks)."""

from __future__ import annotations

from schemas.config import GatewayConfig, Target
from schemas.errors import NotFound


def plan_for(model: str, config: GatewayConfig) -> list[Target]:
    route = config.models.get(model)
    if route is None:
        raise NotFound(
            f"The model '{model}' does not exist or you do not have access to it. "
            f"Known models: {', '.join(sorted(config.models)) or 'none'}.",
            param="model",
            code="model_not_found",
        )
    return list(route.targets)
