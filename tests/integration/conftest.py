from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from infra.operator.launcher import DEMO_KEY, RunningGateway, permission_violations, start_gateway


@pytest.fixture(scope="session", autouse=True)
def no_process_refused_by_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every gateway this session started ran each process on its own NATS identity: whatever the tests
    made the chain do, nats-server refused none of it (checked last, once every gateway has stopped)."""
    yield
    refused = [f"{log}: {line}" for log in sorted(tmp_path_factory.getbasetemp().rglob("nats-server.log"))
               for line in permission_violations(log.read_text(errors="replace"))]
    assert not refused, "\n".join(refused[:30])


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("gateway")
    gw = start_gateway(root)  # the default layout: two hosts, so two replicas of every stage
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=DEMO_KEY, max_retries=0, timeout=30) as c:
        yield c
