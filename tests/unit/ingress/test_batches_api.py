"""The Batch API's pure parts: metadata checked as OpenAI does, a page of jobs (limit, after, has_more),
and what a cancel does to a job in each status."""

from __future__ import annotations

import pytest

from ingress.batches_api import batch_page, cancelled, metadata_of
from schemas.batches import BatchJob, Status
from schemas.errors import Conflict, InvalidRequest
from schemas.wire import replace

JOB = BatchJob(id="batch_x", tenant="acme", api_key_hash="h", endpoint="/v1/chat/completions",
               input_file_id="file-in", created_at=1_700_000_000, expires_at=1_700_086_400)


def _jobs(n: int) -> list[BatchJob]:
    """``n`` jobs, newest first, as the store lists them."""
    return [replace(JOB, id=f"batch_{i:02d}", created_at=1_700_000_000 + i) for i in reversed(range(n))]


def _invalid(value: object) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        metadata_of(value)
    assert caught.value.status_code == 400 and caught.value.code == "invalid_metadata"
    return caught.value


def test_metadata_up_to_the_limits_is_kept_as_a_copy() -> None:
    assert metadata_of(None) is None
    assert metadata_of({}) == {}
    full = {f"k{i}": "v" for i in range(15)} | {"k" * 64: "v" * 512}
    kept = metadata_of(full)
    assert kept == full and kept is not full


@pytest.mark.parametrize("value", [["a"], "a=b", 3])
def test_metadata_must_be_an_object(value: object) -> None:
    assert _invalid(value).param == "metadata"


def test_metadata_holds_at_most_sixteen_pairs() -> None:
    error = _invalid({f"k{i}": "v" for i in range(17)})
    assert error.param == "metadata" and "16" in error.message


@pytest.mark.parametrize(("value", "param"), [
    ({"team": 3}, "metadata.team"),
    ({"team": None}, "metadata.team"),
    ({"ok": "v", "k" * 65: "v"}, "metadata." + "k" * 65),
    ({"note": "v" * 513}, "metadata.note"),
])
def test_a_bad_pair_is_named_in_param(value: dict[str, object], param: str) -> None:
    assert _invalid(value).param == param


def test_limit_must_be_an_integer_from_1_to_100() -> None:
    for limit in ("0", "101", "-1", "ten", "", "2.5"):
        with pytest.raises(InvalidRequest) as caught:
            batch_page(_jobs(3), {"limit": limit})
        assert (caught.value.status_code, caught.value.param, caught.value.code) == (400, "limit", "invalid_limit")
    assert len(batch_page(_jobs(150), {"limit": "1"})["data"]) == 1
    assert len(batch_page(_jobs(150), {"limit": "100"})["data"]) == 100


def test_a_page_defaults_to_twenty_with_first_last_and_has_more() -> None:
    page = batch_page(_jobs(25), {})
    assert page["object"] == "list" and len(page["data"]) == 20
    assert page["data"][0] == replace(JOB, id="batch_24", created_at=1_700_000_024).to_openai()
    assert (page["first_id"], page["last_id"], page["has_more"]) == ("batch_24", "batch_05", True)


def test_after_starts_past_the_id() -> None:
    page = batch_page(_jobs(25), {"after": "batch_05", "limit": "3"})
    assert [j["id"] for j in page["data"]] == ["batch_04", "batch_03", "batch_02"]
    assert (page["first_id"], page["last_id"], page["has_more"]) == ("batch_04", "batch_02", True)
    last = batch_page(_jobs(25), {"after": "batch_02", "limit": "2"})
    assert [j["id"] for j in last["data"]] == ["batch_01", "batch_00"] and last["has_more"] is False


def test_an_empty_page() -> None:
    empty: dict[str, object] = {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
    assert batch_page([], {}) == empty
    assert batch_page(_jobs(3), {"after": "batch_00"}) == empty  # past the oldest
    assert batch_page(_jobs(3), {"after": "batch_unknown"}) == empty


@pytest.mark.parametrize("status", ["validating", "in_progress"])
def test_a_running_job_is_cancelling_from_now(status: Status) -> None:
    job = replace(JOB, status=status)
    assert cancelled(job, 1_700_000_500) == replace(job, status="cancelling", cancelling_at=1_700_000_500)


@pytest.mark.parametrize("status", ["cancelling", "cancelled"])
def test_a_job_already_cancelling_is_left_as_it_is(status: Status) -> None:
    assert cancelled(replace(JOB, status=status, cancelling_at=1_700_000_100), 1_700_000_500) is None


@pytest.mark.parametrize("status", ["completed", "failed", "expired"])
def test_an_ended_job_cannot_be_cancelled(status: Status) -> None:
    with pytest.raises(Conflict) as caught:
        cancelled(replace(JOB, status=status), 1_700_000_500)
    assert (caught.value.status_code, caught.value.code, caught.value.param) == (409, "batch_not_cancellable",
                                                                                  "batch_id")
    assert status in caught.value.message


def test_a_finalizing_job_cannot_be_cancelled() -> None:
    with pytest.raises(Conflict):
        cancelled(replace(JOB, status="finalizing"), 1_700_000_500)
