"""A process of the batch lane runs at the lowest CPU priority (every thread, its session's autogroup,
``SCHED_IDLE``); an interactive one keeps its own."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from workers.app import BATCH_LANE_NICENESS

PROBE = """
import os, threading, orjson
from infra.cpu_priority import autogroup_niceness
from workers.app import lower_priority
early = threading.Thread(target=threading.Event().wait, daemon=True)  # a pool thread an import started
early.start()
lower_priority({lane!r}); lower_priority({lane!r})
print(orjson.dumps({{"nice": os.nice(0), "early": os.getpriority(os.PRIO_PROCESS, early.native_id),
                     "idle": os.sched_getscheduler(0) == os.SCHED_IDLE, "autogroup": autogroup_niceness()}}).decode())
"""


def probe(lane: str, *, own_session: bool) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(lane=lane)], capture_output=True, text=True,
                         start_new_session=own_session)
    assert out.returncode == 0, out.stderr
    return dict(orjson.loads(out.stdout))


def test_the_batch_lane_runs_below_every_interactive_process() -> None:
    got = probe("batch", own_session=True)  # as gateway up starts it
    assert got["nice"] == got["early"] == BATCH_LANE_NICENESS and got["idle"] is True
    assert got["autogroup"] in (BATCH_LANE_NICENESS, None)  # None: a kernel without autogroups


def test_an_interactive_process_keeps_its_priority() -> None:
    got = probe("interactive", own_session=True)
    assert got["nice"] == got["early"] == os.nice(0) and got["idle"] is False


def test_a_process_sharing_its_shells_session_leaves_the_session_alone() -> None:
    before = probe("interactive", own_session=False)["autogroup"]
    got = probe("batch", own_session=False)
    assert got["nice"] == BATCH_LANE_NICENESS and got["autogroup"] == before  # this test's own session untouched


@pytest.fixture(autouse=True)
def _linux_only() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("thread priorities and autogroups are Linux's")
