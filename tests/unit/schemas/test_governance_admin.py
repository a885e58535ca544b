"""What an operator writes: durations, expiries, and the request models' refusals naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas.governance_admin import BudgetSet, KeyCreate, KeyRotate, KeyUpdate, parse_duration, parse_expiry

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("text", "seconds"), [("45s", 45), ("10m", 600), ("12h", 43_200), ("30d", 2_592_000),
                                               ("2w", 1_209_600), ("0", 0), (" 1.5h ", 5400), ("0s", 0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "10x", "-5m", "m", "1 0m", "ten minutes"])
def test_not_a_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="30d, 12h, 10m"):
        parse_duration(text)


def test_expiry_from_a_duration_a_date_a_datetime_or_never() -> None:
    assert parse_expiry("30d", NOW) == NOW + 30 * 86400
    assert parse_expiry("2027-01-31", NOW) == datetime(2027, 1, 31, tzinfo=UTC).timestamp()
    assert parse_expiry("2027-01-31T12:00:00+02:00", NOW) == datetime(2027, 1, 31, 10, tzinfo=UTC).timestamp()
    assert parse_expiry("never", NOW) is None
    with pytest.raises(ValueError, match="ISO date"):
        parse_expiry("next tuesday", NOW)


def test_create_defaults_and_fields() -> None:
    req = KeyCreate.model_validate({"tenant": "acme", "budget_usd": "12.50", "tags": {"env": "prod"}})
    assert req.models == ["*"] and req.id is None and req.team == "" and req.budget_usd == "12.50"
    assert req.model_fields_set == {"tenant", "budget_usd", "tags"}


@pytest.mark.parametrize(("body", "field"), [
    ({}, "tenant"),
    ({"tenant": "a b"}, "tenant"),
    ({"tenant": "acme", "id": "key.1"}, "id"),
    ({"tenant": "acme", "team": "x/y"}, "team"),
    ({"tenant": "acme", "budget_usd": "-1"}, "budget_usd"),
    ({"tenant": "acme", "budget_usd": "lots"}, "budget_usd"),
    ({"tenant": "acme", "budget_period": "week"}, "budget_period"),
    ({"tenant": "acme", "rpm": 0}, "rpm"),
    ({"tenant": "acme", "alert_at": 1.5}, "alert_at"),
    ({"tenant": "acme", "expires": "soon"}, "expires"),
    ({"tenant": "acme", "models": []}, "models"),
    ({"tenant": "acme", "secret": "sk-gw-x"}, "secret"),
])
def test_create_refusals_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        KeyCreate.model_validate(body)
    assert raised.value.errors()[0]["loc"][0] == field


def test_update_knows_which_fields_were_given_and_null_clears() -> None:
    req = KeyUpdate.model_validate({"rpm": None, "name": "n"})
    assert req.model_fields_set == {"rpm", "name"} and req.rpm is None


def test_rotate_grace_and_budget_set() -> None:
    assert KeyRotate().grace == "0" and KeyRotate(grace="10m").grace == "10m"
    with pytest.raises(ValidationError):
        KeyRotate(grace="ten")
    assert BudgetSet.model_validate({"usd": "100", "period": "day"}).period == "day"
    with pytest.raises(ValidationError):
        BudgetSet.model_validate({"usd": "100", "period": "hour"})
