"""Hot reload through the whole gateway: a config change takes effect in every worker without a restart
and without failing requests in flight; an invalid one changes nothing.

Its own gateway (module scope), since these tests change its config. Every wait polls for a condition;
the time limits only bound a failure.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from infra.config import version_of
from infra.operator.launcher import DEMO_KEY, RunningGateway, start_gateway

pytestmark = pytest.mark.integration

NEW_KEY = "sk-hot-reload-added"
# every process that serves requests with the live config (the sink and the mock provider do not); the
# split layout (a process per stage), so each stage's reload shows on its own
LIVE_WORKERS = ["ingress", "redaction", "policy", "routing", "provider", "output_filter.0", "output_filter.1"]
SPLIT = ["ingress=1", "redaction=1", "policy=1", "routing=1", "provider=1", "output_filter=2"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("hot-reload"), replicas=SPLIT, layout="split")
    try:
        yield gateway
    finally:
        gateway.stop()


def config_file(gw: RunningGateway) -> Path:
    return gw.root / "gateway.yaml"


def read_config(gw: RunningGateway) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(config_file(gw).read_text())
    return data


def write_atomically(path: Path, data: dict[str, Any] | str) -> str:
    text = data if isinstance(data, str) else yaml.safe_dump(data)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return text


def cli(gw: RunningGateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "infra.operator.cli", *args], env=gw.env, capture_output=True,
                          text=True, timeout=60)


def active(gw: RunningGateway) -> dict[str, str]:
    out = cli(gw, "config", "show")
    assert out.returncode == 0, out.stderr
    return dict(line.split(" ", 1) for line in out.stdout.splitlines())


def wait_until(condition: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as exc:  # noqa: BLE001 - not yet: keep polling
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s}s (last: {last!r})")


def client(gw: RunningGateway, key: str = DEMO_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=key, max_retries=0, timeout=30)


def chat(gw: RunningGateway, model: str, key: str = DEMO_KEY, content: str = "hello") -> str:
    with client(gw, key) as c:
        answer = c.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    return answer.choices[0].message.content or ""


def taken_by_every_worker(gw: RunningGateway, version: str) -> bool:
    return all(f"config {version} active" in gw.log(name) for name in LIVE_WORKERS)


def test_editing_the_file_adds_a_key_and_a_model_without_a_restart(gw: RunningGateway) -> None:
    pids = gw.pids()
    with pytest.raises(openai.AuthenticationError):
        chat(gw, "gpt-4o-mini", key=NEW_KEY)
    with pytest.raises(openai.NotFoundError):
        chat(gw, "hot-alias")

    config = read_config(gw)
    config["keys"].append({"id": "hot", "key_sha256": hashlib.sha256(NEW_KEY.encode()).hexdigest(),
                           "tenant": "hot", "models": ["hot-alias"]})
    config["models"]["hot-alias"] = {"targets": [{"provider": "mock-openai", "model": "hot-model-1"}]}
    text = write_atomically(config_file(gw), config)
    version = version_of(text)

    wait_until(lambda: chat(gw, "hot-alias", key=NEW_KEY), "the new key and alias answer")
    with client(gw, NEW_KEY) as c:
        assert "hot-alias" in [m.id for m in c.models.list()]
        with pytest.raises(openai.PermissionDeniedError):  # the new key's own model list is enforced
            c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert active(gw)["version"] == version
    assert active(gw)["source"] == f"file:{config_file(gw).resolve()}"
    wait_until(lambda: taken_by_every_worker(gw, version), "every worker took the new version")
    assert f"config {version} applied from" in (gw.root / "gateway-up.log").read_text()
    assert gw.pids() == pids  # nothing restarted


def test_an_invalid_config_changes_nothing(gw: RunningGateway) -> None:
    pids = gw.pids()
    before = active(gw)
    config = read_config(gw)
    config["models"]["broken"] = {"targets": [{"provider": "no-such-provider", "model": "x"}]}
    bad = gw.root / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))

    out = cli(gw, "config", "apply", str(bad))
    assert out.returncode != 0
    assert str(bad) in out.stderr
    assert "models.broken.targets.0.provider" in out.stderr and "no-such-provider" in out.stderr
    assert active(gw) == before

    # the same through the file `gateway up` watches: refused, logged with the bad path
    good_text = config_file(gw).read_text()
    write_atomically(config_file(gw), yaml.safe_dump(config))
    up_log = gw.root / "gateway-up.log"
    refused = wait_until(lambda: [line for line in up_log.read_text().splitlines()
                                  if "config change refused" in line], "the supervisor refused the change")
    assert before["version"] in refused[-1] and str(config_file(gw).resolve()) in refused[-1]
    assert "models.broken.targets.0.provider" in up_log.read_text()
    assert active(gw) == before
    assert chat(gw, "gpt-4o-mini")
    with pytest.raises(openai.NotFoundError):
        chat(gw, "broken")
    write_atomically(config_file(gw), good_text)  # back to the active content: nothing to publish
    assert gw.pids() == pids


class Clients:
    """``n`` callers in a loop until stopped, half of them streaming; every outcome is kept."""

    def __init__(self, gw: RunningGateway, n: int) -> None:
        self.gw = gw
        self.done = [0] * n
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def _run(self, i: int) -> None:
        prompt = f"[[mock latency_ms=300]] client {i}: mail me at jane{i}@example.com"
        with client(self.gw) as c:
            while not self.stop.is_set():
                try:
                    if i % 2:
                        parts, finish = [], None
                        for chunk in c.chat.completions.create(
                                model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": prompt}]):
                            for choice in chunk.choices:
                                parts.append(choice.delta.content or "")
                                finish = choice.finish_reason or finish
                        assert "".join(parts) and finish == "stop", (parts, finish)
                    else:
                        answer = c.chat.completions.create(
                            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
                        assert answer.choices[0].message.content
                except Exception as exc:  # noqa: BLE001 - every failure is reported by the test
                    self.errors.append(f"client {i}: {type(exc).__name__}: {exc}")
                self.done[i] += 1

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def each_did(self, count: int) -> bool:
        return min(self.done) >= count


def test_requests_in_flight_survive_a_reload(gw: RunningGateway) -> None:
    pids = gw.pids()
    config = read_config(gw)
    config["models"]["hot-alias-2"] = {"targets": [{"provider": "mock-anthropic", "model": "claude-3-5-haiku-latest"}]}
    # settings every stage derives something from: keys, retry, and both PII scanners (rebuilt in a thread)
    config["keys"].append({"id": "other", "key_sha256": hashlib.sha256(b"sk-other").hexdigest(), "tenant": "o"})
    config["retry"] = {**config.get("retry", {}), "attempts_per_target": 3}
    config["redaction"] = {"entities": ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD"], "score_threshold": 0.5}
    config["output_filter"] = {**config.get("output_filter", {}), "entities": ["EMAIL_ADDRESS", "US_SSN"],
                               "window_chars": 96}
    changed = gw.root / "changed.yaml"
    text = write_atomically(changed, config)

    with Clients(gw, 8) as clients:
        wait_until(lambda: clients.each_did(2), "a steady stream of requests")
        out = cli(gw, "config", "apply", str(changed))
        assert out.returncode == 0, out.stderr
        version = version_of(text)
        assert out.stdout.strip() == f"applied config {version} from {changed}"
        wait_until(lambda: taken_by_every_worker(gw, version), "every worker took the new version")
        after = list(clients.done)
        wait_until(lambda: all(d >= a + 2 for d, a in zip(clients.done, after, strict=True)),
                   "requests after the reload")
    assert not clients.errors, clients.errors[:5]
    assert sum(clients.done) >= 8 * 4
    assert chat(gw, "hot-alias-2")
    shown = active(gw)
    assert shown["version"] == version and shown["source"].startswith("apply:")
    assert gw.pids() == pids

    # an analyst can check that every worker took it: one `activated` row per process, one `applied`
    expected = {f"{name.split('.')[0]}-{pids[name]}" for name in LIVE_WORKERS}
    rows = gw.wait_rows(
        f"SELECT reason, source, from_state, to_state FROM gateway_events "
        f"WHERE kind = 'config' AND subject = '{version}'",
        lambda rows: expected <= {r["source"] for r in rows if r["reason"] == "activated"}
        and any(r["reason"] == "applied" for r in rows))
    applied = [r for r in rows if r["reason"] == "applied"]
    assert len(applied) == 1 and applied[0]["source"].startswith("apply:") and applied[0]["to_state"] == version
