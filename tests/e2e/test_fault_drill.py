"""The fault drill, short: steady open-loop load (30 req/s, a quarter of it streamed, an SDK-like client
with 2 retries) while one process of every kind but the mock provider is SIGKILLed in turn, 4 s apart,
nats-server last, then 6 s of load with no kill.

Decided by outcomes, never by wall-clock time: nothing lost, wrong or answered twice; every request id
the client saw is exactly one ``requests`` row; every killed process came back; extra provider calls
within the budget below. Interrupted streams (an explicit in-band error) and streams cut because the
ingress serving them died are reported, not failed. ``python bench/fault_drill.py`` runs the full
version and prints the tables (bench/README.md, "Fault drill").
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fault_drill import DrillOptions, run_drill
from bench.fault_drill_report import DrillReport, render_report
from tests.support.gateway import RunningGateway, start_gateway

pytestmark = pytest.mark.e2e

RATE = 30.0
# Kinds whose death cannot cost a provider call: they handle a request before the provider stage
# (a rerun of a request they held never reached the provider) or off the answer path (the sink).
BEFORE_THE_CALL = frozenset({"redaction", "policy", "routing", "sink"})
# The longest a request spends between the start of its provider call and its end-to-end ack: a stream
# (30 ms latency + ~20 chunks 20 ms apart ≈ 0.45 s), rounded up.
PAST_THE_CALL_S = 0.5


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("fault-drill")
    gw = start_gateway(root)
    try:
        yield gw
    finally:
        gw.stop()


def extra_call_budget(report: DrillReport) -> int:
    """A kill of a process on the answer path at or after the provider stage (provider, output filter,
    ingress, nats-server, or any new kind) may rerun, or make the client retry, the requests that were
    past their provider call when it died: at most those scheduled in the last ``PAST_THE_CALL_S``
    (≈ 15 at 30 req/s; ≈ 4 on average). A kill before the call costs none: a request that waits while a
    stage restarts must not be redelivered and called twice (ARCHITECTURE §3, "Redelivery and backlog")."""
    per_kill = math.ceil(RATE * PAST_THE_CALL_S)
    return sum(per_kill for k in report.kills if k.pid is not None and k.kind not in BEFORE_THE_CALL)


@pytest.mark.xfail(reason="issue 10: being fixed", strict=False)
def test_kill_every_kind_under_steady_load(gateway: RunningGateway) -> None:
    options = DrillOptions(rate=RATE, warmup_s=3, kill_every_s=4, tail_s=6, kinds=None, seed=10,
                           request_timeout_s=15, drain_timeout_s=20, rows_timeout_s=20)
    report = run_drill(options, gateway=gateway, log=print)
    table = render_report(report)
    print(table)
    total = report.total
    kinds = set(report.options["kinds"])
    assert {"redaction", "policy", "routing", "provider", "output_filter", "sink", "ingress",
            "nats-server"} <= kinds, kinds
    assert "mock_provider" not in kinds
    assert total.sent == round(RATE * (3 + 4 * len(report.kills) + 6)), table
    assert all(k.pid is not None for k in report.kills), table  # each kind had a process to kill
    assert total.lost == 0, table
    assert total.wrong == 0, table
    assert total.twice == 0, table
    assert report.rows_checked, report.rows_error
    assert total.ids_not_one_row == 0, table
    assert total.extra_calls <= extra_call_budget(report), table
    not_back = [k.name for k in report.kills if k.replaced_after_s is None]
    assert not not_back, f"not restarted: {not_back}\n{table}"
    assert report.ok, table
