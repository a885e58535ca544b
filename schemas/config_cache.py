"""The response cache's settings: at the top level of the config, per model alias and per key (the key's
win, then the alias's, then the top level's). See ``stages/cache.py``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CacheMode = Literal["off", "exact", "semantic"]


class CacheSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: CacheMode = Field(
        default="off", description="off | exact: answers of identical requests (after redaction) are reused | "
                                   "semantic: exact, then a reworded last question's (stages/semantic_cache.py)")
    ttl_s: int = Field(default=3600, ge=1, le=30 * 86400, description="how long an answer may be reused")
    max_entry_bytes: int = Field(default=256 * 1024, ge=1024, le=8 * 1024 * 1024,
                                 description="answers larger than this are not cached")
    similarity: float = Field(default=0.8, ge=0.5, le=1.0,
                              description="semantic mode: the least score the judge gives two questions whose "
                                          "answer is shared (its probability that one answer answers both)")

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        """YAML 1.1 reads an unquoted ``off`` as false."""
        return "off" if value is False else value
