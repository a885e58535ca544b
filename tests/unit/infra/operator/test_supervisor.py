"""What ``gateway up`` starts: the plan of children in each layout, the batch lane's host among them."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.child_env import STAGES
from infra.nats_permissions import IDENTITIES
from infra.operator.supervisor import Supervisor
from infra.settings import Settings


def plan(tmp_path: Path, layout: str, replicas: dict[str, int] | None = None) -> dict[str, dict[str, str]]:
    settings = Settings(data_dir=tmp_path, config=tmp_path / "gateway.yaml")
    supervisor = Supervisor(settings, replicas=replicas or {}, layout=layout)
    supervisor.creds = {identity: tmp_path / f"{identity}.nk" for identity in IDENTITIES}
    return {child.name: {**child.env, "ARGS": " ".join(child.args[1:])}
            for child in supervisor._plan("nats://127.0.0.1:4222")}


def test_the_batch_lane_runs_every_stage_in_a_host_of_its_own(tmp_path: Path) -> None:
    children = plan(tmp_path, "hosted")
    lane = children["lane"]
    assert lane["ARGS"] == "-m workers.host" and lane["GATEWAY_LANE"] == "batch"
    assert lane["GATEWAY_NATS_CREDS"].endswith("stages.nk")  # a workers.host like the hosted layout's


def test_in_the_split_layout_the_batch_lane_has_a_process_per_stage(tmp_path: Path) -> None:
    children = plan(tmp_path, "split")
    assert "lane" not in children
    for stage in STAGES:
        lane = children[f"{stage}_lane"]
        assert lane["ARGS"] == f"-m workers.{stage}" and lane["GATEWAY_LANE"] == "batch"
        assert lane["GATEWAY_NATS_CREDS"].endswith(f"{stage}.nk")  # its stage's identity, nothing more


@pytest.mark.parametrize("layout", ["hosted", "split"])
def test_only_the_lanes_processes_serve_the_batch_lane(tmp_path: Path, layout: str) -> None:
    children = plan(tmp_path, layout)
    stage_children = [name for name in children if name.split(".")[0] in
                      ("stages", "redaction", "policy", "routing", "provider", "output_filter")]
    assert stage_children and all(children[name]["GATEWAY_LANE"] == "interactive" for name in stage_children)
    # the processes outside the chain serve no lane
    assert not {name for name in ("sink", "batch", "ingress.0") if "GATEWAY_LANE" in children[name]}


def test_lanes_and_batch_drivers_scale_with_replicas(tmp_path: Path) -> None:
    children = plan(tmp_path, "hosted", {"lane": 2, "batch": 2})
    assert {"lane.0", "lane.1", "batch.0", "batch.1"} <= set(children)
    assert "lane" not in children
