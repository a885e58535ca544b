"""Secrets only where used, through the whole ``gateway up``: the value of a provider's ``env:`` key is in
the environment of the processes that run the provider stage and of no other child, in both layouts
(read from ``/proc/<pid>/environ``); the provider still calls with it. Each child holds the path of its
own NATS identity's seed only.

One gateway start per layout; every wait polls for a condition, the time limits only bound a failure.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import uuid
from pathlib import Path

import openai
import pytest

from infra.child_env import identity_for
from infra.nats_creds import creds_dir, seed_path
from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, gateway_config, mock_requests, start_gateway

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/environ")]

SECRET_VAR = "GW_TEST_PROVIDER_SECRET"
SALT_VAR = "GW_TEST_REDACTION_SALT"
UNRELATED_VAR = "GW_TEST_UNRELATED"
ADMIN_HASH = hashlib.sha256(b"sk-admin-child-env").hexdigest()
ENVELOPE_KEY = base64.b64encode(b"envelope-key-of-child-env-test!!").decode()  # 32 bytes
# (layout, replicas, the children that run the provider stage, those that run redaction, those that hold
# the envelope key: ingress seals the request, redaction opens it, the output filter opens the map)
LAYOUTS = [
    ("hosted", ["ingress=1"], {"stages.0", "stages.1", "lane"}, {"stages.0", "stages.1", "lane"},
     {"ingress", "stages.0", "stages.1", "lane", "batch"}),
    ("split", ["ingress=1", "redaction=1", "policy=1", "routing=1", "provider=2", "output_filter=1"],
     {"provider.0", "provider.1", "provider_lane"}, {"redaction", "redaction_lane"},
     {"ingress", "redaction", "output_filter", "redaction_lane", "output_filter_lane", "batch"}),
]


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode("utf-8", "replace").split("\0") if "=" in item)


@pytest.mark.parametrize(("layout", "replicas", "provider_children", "redaction_children", "key_children"),
                         LAYOUTS, ids=[layout[0] for layout in LAYOUTS])
def test_provider_secret_only_in_provider_processes(tmp_path: Path, layout: str, replicas: list[str],
                                                    provider_children: set[str],
                                                    redaction_children: set[str], key_children: set[str]) -> None:
    secret, salt, unrelated = (f"value-{uuid.uuid4().hex}" for _ in range(3))
    config = gateway_config(free_port())
    config["providers"]["mock-openai"]["api_key"] = f"env:{SECRET_VAR}"
    config["redaction"] = {"hash_salt": f"env:{SALT_VAR}"}
    gw = start_gateway(tmp_path / layout, config, replicas=replicas, layout=layout,
                       extra_env={SECRET_VAR: secret, SALT_VAR: salt, UNRELATED_VAR: unrelated,
                                  "GATEWAY_ADMIN_KEY_SHA256": ADMIN_HASH, "GATEWAY_ENVELOPE_KEY": ENVELOPE_KEY})
    try:
        pids = gw.pids()
        environs = {name: environ_of(pid) for name, pid in pids.items()}
        assert "nats-server" in environs and "sink" in environs and "mock_provider" in environs
        assert provider_children | redaction_children <= environs.keys()

        def holding(value: str) -> set[str]:
            return {name for name, env in environs.items() if any(value in v for v in env.values())}

        assert holding(secret) == provider_children
        assert holding(salt) == redaction_children
        assert holding(unrelated) == set()
        assert holding(ADMIN_HASH) == {"ingress"}
        assert holding(ENVELOPE_KEY) == key_children
        # each child holds its own NATS identity's seed path, and no other's (nats-server and the mock none)
        creds = creds_dir(gw.data_dir)
        for name, env in environs.items():
            identity = identity_for(name.split(".")[0]) if name != "nats-server" else None
            held = {v for v in env.values() if str(creds) in v}
            assert held == ({str(seed_path(gw.data_dir, identity))} if identity is not None else set()), name
            if held:
                assert env["GATEWAY_NATS_CREDS"] == str(seed_path(gw.data_dir, str(identity)))
        assert all(env[SECRET_VAR] == secret for name, env in environs.items() if name in provider_children)
        assert environ_of(gw.process.pid)[SECRET_VAR] == secret  # the supervisor had it all along

        # the provider resolves it: the mock saw a key (it masks the value)
        with openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=DEMO_KEY, max_retries=0, timeout=30) as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        calls = [r for r in mock_requests(gw) if r["path"].endswith("/chat/completions")]
        assert calls and calls[-1]["headers"].get("authorization") == "<set>"
    finally:
        gw.stop()
