"""Loading the shipped price catalog (``infra/prices.yaml``) into ``CatalogPrice`` entries (the price
book built over it is ``bootstrap.price_book``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from schemas.config import CatalogPrice

CATALOG = Path(__file__).with_name("prices.yaml")


def load_catalog(path: Path = CATALOG) -> list[CatalogPrice]:
    rows: list[dict[str, Any]] = yaml.safe_load(path.read_text()) or []
    return [
        CatalogPrice(provider=r["provider"], model=r["model"], input_per_mtok=r["input"],
                     output_per_mtok=r["output"], cached_input_per_mtok=r.get("cached"),
                     max_output=r.get("max_output"))
        for r in rows
    ]

