"""The dashboard's SQL: every parameter checked before it reaches the text, names quoted, search only
compared with ``position``; the rollup read when it holds the grouping."""

from __future__ import annotations

import pytest

from ingress.ui_queries import Filters, one_request, quote, request_log, series
from schemas.errors import InvalidRequest


def test_defaults_and_the_rollup_for_tenants_models_and_providers() -> None:
    f = Filters.of({})
    assert (f.range, f.group, f.seconds, f.step) == ("24h", "tenant", 86_400, 900)
    assert "FROM requests_per_minute" in series(f) and "INTERVAL 900 SECOND" in series(f)
    assert "FROM requests FINAL" in series(Filters.of({"group": "key"}))
    assert "api_key_id AS g" in series(Filters.of({"group": "key"}))


@pytest.mark.parametrize(("query", "param"), [
    ({"range": "1y"}, "range"), ({"group": "user"}, "group"), ({"tenant": "a'b"}, "tenant"),
    ({"model": "x y"}, "model"), ({"status": "maybe"}, "status"), ({"q": "x" * 201}, "q"),
])
def test_bad_parameters_are_refused_by_name(query: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        Filters.of(query)
    assert caught.value.param == param


def test_names_and_search_text_are_quoted() -> None:
    sql = request_log(Filters.of({"tenant": "acme", "model": "org/model-1", "status": "error",
                                  "q": "it's \\ here"}))
    assert "tenant = 'acme'" in sql and "model_requested = 'org/model-1'" in sql and "status_code >= 400" in sql
    assert "position(request_body, 'it\\'s \\\\ here')" in sql
    assert quote("a'b\\c") == "'a\\'b\\\\c'"


def test_one_request_needs_a_request_id() -> None:
    row, events, verdicts = one_request("01A2433B-D261-720B-AE43-235E20528C83")
    assert "request_id = '01a2433b-d261-720b-ae43-235e20528c83'" in row and "FROM events" in events
    with pytest.raises(InvalidRequest):
        one_request("1 OR 1=1")
