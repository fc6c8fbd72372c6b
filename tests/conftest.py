"""Fixtures that start real parts: a MinIO server, the function runner, the API.

Every server takes a free port and the session's own state folder, so the tests never
collide with a stack that `make up` started.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cutor.api import create_app
from cutor.image import sandbox_image_tag
from cutor.minio_server import WEBHOOK_ARN, MinioServer, ensure_credentials
from cutor.runner import LocalRunner
from cutor.settings import Settings
from cutor.storage import ObjectStore
from starlette.testclient import TestClient

TEST_GCROOTS_PARENT = Path("/nix/var/nix/gcroots/cutor")
FINAL = {"FINISHED", "DEPENDENCIES_FAILED", "COMPILE_FAILED", "INTERNAL_ERROR"}


def free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def make_settings(state_dir: Path, endpoint: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "state_dir": state_dir,
        "storage_endpoint": endpoint,
        "bucket": f"test-{secrets.token_hex(4)}",
        "worker_id": f"test-{secrets.token_hex(4)}",
        "webhook_address": free_address(),
        "sandbox_image": sandbox_image_tag(),
        "sweep_interval": 2.0,
        "auth_mode": "open",
    }
    values.update(overrides)
    return Settings(**values)


class Stack:
    """MinIO, the runner and the API of one test session, sharing one bucket."""

    def __init__(self, state_dir: Path, runtime: str, **overrides: Any) -> None:
        # A GC roots folder of its own, removed at stop, so that test runs leave no
        # environment rooted in the shared folder. Callers may pass their own.
        self.own_roots: Path | None = None
        if "nix_gcroots_dir" not in overrides:
            self.own_roots = TEST_GCROOTS_PARENT / f"tests-{secrets.token_hex(6)}"
            overrides["nix_gcroots_dir"] = self.own_roots
        self.minio = MinioServer(state_dir, free_address())
        ensure_credentials(self.minio.credentials_path)
        self.settings = make_settings(
            state_dir, self.minio.endpoint, docker_runtime=runtime, **overrides
        )
        self.store = ObjectStore(self.settings)
        self.runner = LocalRunner(self.settings, self.store)
        self.runner.start_receiver()
        self.minio.start(webhook=(self.runner.webhook_url, self.runner.webhook_token))
        self.store.ensure_bucket()
        self.store.send_created_events_to(WEBHOOK_ARN)
        self.runner.start()
        self.client = TestClient(create_app(self.settings, self.store))

    def stop(self) -> None:
        self.runner.stop()
        self.minio.stop()
        if self.own_roots is not None:
            shutil.rmtree(self.own_roots, ignore_errors=True)

    def submit(self, body: dict[str, Any]) -> str:
        response = self.client.post("/submissions", json=body)
        assert response.status_code == 202, response.text
        submission_id: str = response.json()["id"]
        return submission_id

    def wait(self, submission_id: str, timeout: float = 120.0, raw: bool = False) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            suffix = "?base64=true" if raw else ""
            result: dict[str, Any] = self.client.get(f"/submissions/{submission_id}{suffix}").json()
            if result["status"] in FINAL:
                return result
            assert time.monotonic() < deadline, f"submission still {result['status']}"
            time.sleep(0.05)

    def run(
        self, body: dict[str, Any], timeout: float = 120.0, raw: bool = False
    ) -> dict[str, Any]:
        return self.wait(self.submit(body), timeout, raw)


@pytest.fixture(scope="session")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    server = MinioServer(tmp_path_factory.mktemp("minio-state"), free_address())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def runc_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("stack-state"), "runc")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def stack(runc_stack: Stack) -> Stack:
    return runc_stack


@pytest.fixture(scope="session")
def runsc_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second stack whose sandboxes run under gVisor (Docker runtime runsc)."""
    running = Stack(tmp_path_factory.mktemp("runsc-stack-state"), "runsc")
    yield running
    running.stop()


RUNTIMES = ("runc", "runsc")


@pytest.fixture(params=RUNTIMES)
def runtime_stack(request: pytest.FixtureRequest) -> Stack:
    """The runc stack, then the runsc stack: a test that uses this runs under both."""
    name = "runc_stack" if request.param == "runc" else "runsc_stack"
    running: Stack = request.getfixturevalue(name)
    return running


def files(**named: str) -> list[dict[str, str]]:
    """Build a ``files`` list; keyword names use _ for . (run_sh is run.sh)."""
    return [{"name": name.replace("_", "."), "content": content} for name, content in named.items()]
