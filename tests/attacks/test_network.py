"""Network: a submission has no route anywhere, no name service, and no Docker socket.

The targets are the test stack's own listening ports on the host's 127.0.0.1, Docker's
TCP ports on 127.0.0.1 and on the docker0 gateway, a canary listener on the host, and
192.0.2.1 (TEST-NET-1). The probe only tries to connect from inside the sandbox, where
the only interface is loopback, so no packet reaches any of them.
"""

from __future__ import annotations

import json
import os
import subprocess

from tests.attacks.conftest import Canary, probe_body, probe_report
from tests.conftest import Stack


def docker_gateway() -> str:
    """Return the address of docker0 on the host, from the machine's main dockerd."""
    environment = {key: value for key, value in os.environ.items() if key != "DOCKER_HOST"}
    shown = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format",
         "{{range .IPAM.Config}}{{.Gateway}}{{end}}"],
        capture_output=True, text=True, check=True, env=environment,
    )
    return shown.stdout.strip() or "172.17.0.1"


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_network_is_unreachable(stack: Stack, canary: Canary) -> None:
    gateway = docker_gateway()
    minio_port = port_of(stack.minio.address)
    targets = [
        ["127.0.0.1", minio_port],
        ["127.0.0.1", port_of(stack.settings.webhook_address)],
        ["127.0.0.1", canary.port],
        ["127.0.0.1", 2375],
        ["127.0.0.1", 2376],
        [gateway, 2375],
        [gateway, 2376],
        [gateway, minio_port],
        ["192.0.2.1", 80],
        ["::1", minio_port],
    ]
    report = probe_report(stack.run(probe_body("network.py", json.dumps(targets))))

    assert len(report["tcp"]) == len(targets)
    for target, attempt in report["tcp"].items():
        assert attempt != "connected", f"{target} was reachable from the sandbox"
    assert canary.received == []
    for path, attempt in report["unix"].items():
        assert attempt == "ENOENT", f"{path}: {attempt}"
    for name, answer in report["dns"].items():
        assert not answer.startswith("resolved"), f"{name}: {answer}"
    assert report["interfaces"] == ["lo"]
    assert "00000000" not in report["routes"], "the sandbox has a default route"
