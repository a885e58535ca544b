"""The response cache's settings: at the top level of the config, per model alias and per key (the key's
win, then the alias's, then the top level's). See ``stages/cache.py``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CacheMode = Literal["off", "exact", "semantic"]


class CacheSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: CacheMode = Field(
        default="off", description="off | exact: answers of identical requests (after redaction) are reused")
    ttl_s: int = Field(default=3600, ge=1, le=30 * 86400, description="how long an answer may be reused")
    max_entry_bytes: int = Field(default=256 * 1024, ge=1024, le=8 * 1024 * 1024,
                                 description="answers larger than this are not cached")

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        """YAML 1.1 reads an unquoted ``off`` as false."""
        return "off" if value is False else value

    @model_validator(mode="after")
    def _built(self) -> CacheSettings:
        if self.mode == "semantic":
            raise ValueError("cache mode 'semantic' is not available in this version (no embedding model ships "
                             "with it yet); use 'exact' or 'off'")
        return self
