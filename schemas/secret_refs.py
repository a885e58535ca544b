"""Secrets in the config file are references, ``env:NAME``, never values: resolved only by the stage
that needs them (the provider stage for API keys, redaction for the hash salt)."""

from __future__ import annotations

import re

SECRET_REF = re.compile(r"^env:[A-Za-z_][A-Za-z0-9_]*$")


def check_secret_ref(value: str | None) -> str | None:
    """``value`` if it is ``None`` or an ``env:NAME`` reference; a field validator raises otherwise."""
    if value is not None and not SECRET_REF.match(value):
        raise ValueError("secrets are referenced as 'env:NAME', never written in the config file")
    return value
