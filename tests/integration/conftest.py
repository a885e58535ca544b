from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from infra.operator.launcher import DEMO_KEY, RunningGateway, start_gateway


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("gateway")
    gw = start_gateway(root)  # the default layout: two hosts, so two replicas of every stage
    try:
        yield gw
    finally:
        gw.stop()
    # every process ran on its own NATS identity: whatever the suite made it do, none was refused
    assert gw.permission_violations() == [], "\n".join(gw.permission_violations()[:20])


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=DEMO_KEY, max_retries=0, timeout=30) as c:
        yield c
