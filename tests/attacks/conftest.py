"""Fixtures of the attack suite: the runtimes, probe programs, host state, planted secrets.

Every test that takes ``stack`` runs under runc, under runsc (gVisor), and under runc on
a Docker daemon with user-namespace remapping (see userns_docker.py).
Probe programs live in ``programs/``; each runs in the sandbox as the submission and
prints one JSON object, which the test reads back. Nothing here sends traffic to any
address but 127.0.0.1 of the host.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cutor.image import sandbox_image_tag

from tests.attacks.userns_docker import DOCKER_HOST as USERNS_DOCKER_HOST
from tests.attacks.userns_docker import UsernsDocker
from tests.conftest import Stack

PROGRAMS = Path(__file__).parent / "programs"
MiB = 1024 * 1024
GiB = 1024 * MiB
QUICK = {"wall_time": 10, "cpu_time": 5}


@pytest.fixture(scope="session")
def userns_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose sandboxes run under runc on a second, user-namespace-remapping dockerd."""
    daemon = UsernsDocker()
    try:
        daemon.start()
        daemon.ensure_image(sandbox_image_tag())
        with pytest.MonkeyPatch.context() as patch:
            # The runner removes stale containers at start, through the Docker CLI.
            patch.setenv("DOCKER_HOST", USERNS_DOCKER_HOST)
            running = Stack(tmp_path_factory.mktemp("userns-stack-state"), "runc")
        try:
            yield running
        finally:
            running.stop()
    finally:
        daemon.stop()


ATTACK_RUNTIMES = ("runc", "runsc", "runc-userns")


@pytest.fixture(params=ATTACK_RUNTIMES)
def stack(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """Run every attack of this folder under runc, runsc (gVisor) and runc with userns-remap.

    For the last, DOCKER_HOST points the Docker CLI, which Cutor runs, at the remapping
    daemon for the length of the test.
    """
    if request.param == "runc-userns":
        monkeypatch.setenv("DOCKER_HOST", USERNS_DOCKER_HOST)
        remapping: Stack = request.getfixturevalue("userns_stack")
        return remapping
    running: Stack = request.getfixturevalue(f"{request.param}_stack")
    return running


def remapped() -> bool:
    """Return whether this test's sandboxes run on the user-namespace-remapping daemon."""
    return os.environ.get("DOCKER_HOST") == USERNS_DOCKER_HOST


def probe_body(
    program: str, *args: str, limits: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Build a submission whose run.sh runs ``programs/<program>`` with ``args``."""
    quoted = " ".join(shlex.quote(arg) for arg in args)
    named = {
        "run.sh": f"python3 probe.py {quoted}",
        "probe.py": (PROGRAMS / program).read_text(),
        **(files or {}),
    }
    return {
        "files": [{"name": name, "content": content} for name, content in named.items()],
        "limits": {"run": {**QUICK, **(limits or {})}},
    }


def shell_body(run_sh: str, **run_limits: Any) -> dict[str, Any]:
    return {
        "files": [{"name": "run.sh", "content": run_sh}],
        "limits": {"run": {**QUICK, **run_limits}},
    }


def probe_report(result: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON object that a probe printed as its last stdout line."""
    assert result["status"] == "FINISHED", result
    run = result["run"]
    assert run["exit_code"] == 0, run
    lines = run["stdout"].strip().splitlines()
    assert lines, run
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def run_all(stack: Stack, bodies: list[dict[str, Any]], timeout: float = 180.0) -> list[
    dict[str, Any]
]:
    """Submit every body at once, so the runner works on them concurrently; wait for all."""
    submitted = [stack.submit(body) for body in bodies]
    return [stack.wait(submission_id, timeout) for submission_id in submitted]


def sandbox_containers(stack: Stack) -> list[str]:
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=cutor.worker={stack.settings.worker_name()}"],
        capture_output=True, text=True, check=True,
    )
    return listed.stdout.split()


@dataclass(frozen=True)
class HostState:
    """What a submission must not take from the host for longer than it runs."""

    available_memory: int
    docker_free_disk: int
    processes: int
    api_latency: float


def docker_root() -> str:
    shown = subprocess.run(
        ["docker", "info", "--format", "{{.DockerRootDir}}"],
        capture_output=True, text=True, check=True,
    )
    return shown.stdout.strip()


def measure_host(stack: Stack, submission_id: str) -> HostState:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    available = next(int(line.split()[1]) * 1024 for line in meminfo
                     if line.startswith("MemAvailable:"))
    disk = os.statvfs(docker_root())
    processes = sum(1 for entry in os.listdir("/proc") if entry.isdigit())
    started = time.monotonic()
    response = stack.client.get(f"/submissions/{submission_id}")
    latency = time.monotonic() - started
    assert response.status_code == 200, response.text
    return HostState(available, disk.f_bavail * disk.f_frsize, processes, latency)


# How far from the baseline the host may stay once every hostile submission is final.
# Other programs on the machine move these numbers too, so the bounds are loose: they
# catch a sandbox that leaks gigabytes or hundreds of processes, not noise.
MEMORY_TOLERANCE = GiB
DISK_TOLERANCE = GiB
PROCESS_TOLERANCE = 300
MAX_API_LATENCY = 2.0
BASELINE_TIMEOUT = 60.0


def within_baseline(state: HostState, baseline: HostState) -> bool:
    return (
        state.available_memory >= baseline.available_memory - MEMORY_TOLERANCE
        and state.docker_free_disk >= baseline.docker_free_disk - DISK_TOLERANCE
        and state.processes <= baseline.processes + PROCESS_TOLERANCE
        and state.api_latency <= MAX_API_LATENCY
    )


def wait_for_baseline(stack: Stack, baseline: HostState, submission_id: str) -> HostState:
    """Measure the host until it is back within the tolerances, or the timeout passes."""
    deadline = time.monotonic() + BASELINE_TIMEOUT
    state = measure_host(stack, submission_id)
    while not within_baseline(state, baseline) and time.monotonic() < deadline:
        time.sleep(1)
        state = measure_host(stack, submission_id)
    return state


def assert_host_recovered(stack: Stack, baseline: HostState, submission_id: str) -> None:
    state = wait_for_baseline(stack, baseline, submission_id)
    assert state.available_memory >= baseline.available_memory - MEMORY_TOLERANCE, (
        state, baseline)
    assert state.docker_free_disk >= baseline.docker_free_disk - DISK_TOLERANCE, (
        state, baseline)
    assert state.processes <= baseline.processes + PROCESS_TOLERANCE, (state, baseline)
    assert state.api_latency <= MAX_API_LATENCY, state
    assert sandbox_containers(stack) == []


def assert_runs_normally(stack: Stack) -> None:
    """Run an ordinary submission and check that it gets the ordinary result."""
    result = stack.run(shell_body("echo still fine"))
    assert result["status"] == "FINISHED", result
    assert result["run"]["stdout"] == "still fine\n"
    assert result["run"]["limit_exceeded"] is None


@dataclass
class Planted:
    """Secret files the test wrote on the host, and the secret they contain."""

    secret: str
    paths: list[Path]


@pytest.fixture
def planted() -> Iterator[Planted]:
    """Plant world-readable secrets in the host's /tmp, /root and /etc; remove them after."""
    token = secrets.token_hex(8)
    secret = f"cutor-attack-secret-{secrets.token_hex(16)}"
    folder = Path(f"/tmp/cutor-attack-{token}")
    folder.mkdir(mode=0o755)
    paths = [folder / "secret", Path(f"/root/cutor-attack-{token}"),
             Path(f"/etc/cutor-attack-{token}")]
    try:
        for path in paths:
            path.write_text(secret)
            path.chmod(0o644)
        yield Planted(secret, paths)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


class Canary:
    """A TCP listener on the host's 127.0.0.1 that records every connection it accepts."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True, name="canary")
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.settimeout(1)
                try:
                    self.received.append(connection.recv(4096))
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    listening = Canary()
    yield listening
    listening.close()
