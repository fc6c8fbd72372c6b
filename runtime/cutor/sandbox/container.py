"""One sandbox: a fresh Docker container that runs a submission's phases, then is deleted.

The container's PID 1 is the supervisor from the sandbox image. This module starts the
container with the Docker CLI and sends it the submission's files and one command per
phase. It reads back the framed output and removes the container however the run ends.
"""

from __future__ import annotations

import base64
import logging
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from cutor.errors import SandboxError
from cutor.limits import LimitName, PhaseLimits
from cutor.sandbox import protocol
from cutor.sandbox.options import ContainerSpec, docker_run_arguments, pids_limit

logger = logging.getLogger(__name__)

# Seconds the host waits past a phase's wall limit before it kills the container itself:
# the supervisor enforces the limit first, this only covers a supervisor that hangs.
WALL_GRACE_SECONDS = 5.0
CLI_STDERR_BYTES = 64 * 1024
WORK_DIR = "/work"
CUTOR_DIR = "/cutor"


@dataclass
class PhaseReport:
    """The outcome of one phase, as reported to the client."""

    stdout: bytes
    stderr: bytes
    time: float
    cpu_time: float
    memory: int | None
    exit_code: int | None
    signal: str | None
    limit_exceeded: LimitName | None


class Sandbox:
    """A running sandbox container; use as a context manager so it is always removed."""

    def __init__(self, spec: ContainerSpec) -> None:
        self.spec = spec
        self.name = f"cutor-{spec.submission_id[:40]}-{secrets.token_hex(4)}"
        self._process: subprocess.Popen[bytes] | None = None
        self._cli_stderr = bytearray()
        self._killed_at_deadline = False
        self._current: tuple[int, int] | None = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise SandboxError("sandbox is not started")
        return self._process

    def start(self) -> None:
        arguments = docker_run_arguments(self.spec, self.name)
        logger.info("starting container %s for submission %s", self.name, self.spec.submission_id)
        try:
            self._process = subprocess.Popen(
                arguments, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as error:
            raise SandboxError(f"cannot run the docker CLI: {error}") from error
        threading.Thread(target=self._collect_cli_stderr, daemon=True).start()
        self._current = (self.spec.memory, pids_limit(self.spec.runtime, self.spec.processes))

    def _collect_cli_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        for line in iter(stream.readline, b""):
            room = CLI_STDERR_BYTES - len(self._cli_stderr)
            self._cli_stderr.extend(line[: max(0, room)])

    def write_files(self, root: str, files: list[tuple[str, bytes, int]]) -> None:
        self._send(protocol.files_command(root, files))
        result = self._read_result(None)
        if "error" in result:
            raise SandboxError(f"writing files into {root} failed: {result['error']}")

    def run_phase(
        self, argv: list[str], env: dict[str, str], stdin: bytes, limits: PhaseLimits
    ) -> PhaseReport:
        if not self._apply_cgroup_limits(limits):
            message = (
                f"cutor: the phase did not start: memory already in use in the container "
                f"(files left in /work, /tmp or /dev/shm by the previous phase) exceeds "
                f"this phase's memory limit of {limits.memory} bytes\n"
            )
            return PhaseReport(
                stdout=b"", stderr=message.encode(), time=0.0, cpu_time=0.0, memory=None,
                exit_code=None, signal=None, limit_exceeded=LimitName.MEMORY,
            )
        streams = protocol.PhaseStreams(limit=limits.output)
        command = {
            "op": "phase", "argv": argv, "env": env, "cwd": WORK_DIR,
            "stdin": base64.b64encode(stdin).decode(),
            "limits": {
                "wall_time": limits.wall_time, "cpu_time": limits.cpu_time,
                "output": limits.output,
                "nproc": limits.processes if self.spec.runtime == "runsc" else None,
            },
        }
        started = time.monotonic()
        timer = threading.Timer(limits.wall_time + WALL_GRACE_SECONDS, self._kill_at_deadline)
        timer.start()
        try:
            self._send(protocol.encode_command(command))
            try:
                result = self._read_result(streams)
            except EOFError:
                return self._report_died(streams, time.monotonic() - started)
        finally:
            timer.cancel()
        if "error" in result:
            raise SandboxError(f"supervisor failed to run the phase: {result['error']}")
        return _report_from_result(result, streams)

    def _apply_cgroup_limits(self, limits: PhaseLimits) -> bool:
        """Set the container's cgroup limits to the phase's; return False if the memory
        in use already exceeds the phase's memory limit."""
        wanted = (limits.memory, pids_limit(self.spec.runtime, limits.processes))
        if wanted == self._current:
            return True
        if self.spec.runtime == "runsc":
            # NOTE: runsc (gVisor 2022-12) rejects `docker update`, so under gVisor a
            # phase runs with the largest memory and process limits of the container's
            # phases. Remove this branch when runsc supports updating resources.
            return True
        memory, pids = wanted
        completed = subprocess.run(
            ["docker", "update", "--memory", str(memory), "--memory-swap", str(memory),
             "--pids-limit", str(pids), self.name],
            capture_output=True, check=False,
        )
        error = completed.stderr.decode(errors="replace")
        # The kernel refuses a memory limit below the cgroup's current usage, which
        # tmpfs files of the previous phase count towards: the program's doing.
        if completed.returncode != 0 and "current usage" in error:
            logger.info("container %s: memory in use exceeds the next phase's limit: %s",
                        self.name, error.strip())
            return False
        if completed.returncode != 0:
            raise SandboxError(f"docker update of {self.name} failed: {error}")
        self._current = wanted
        return True

    def _send(self, data: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            stdin.flush()
        except BrokenPipeError:
            raise SandboxError(f"container {self.name} exited: {self.cli_error()}") from None

    def _read_result(self, streams: protocol.PhaseStreams | None) -> dict[str, Any]:
        stdout: IO[bytes] | None = self.process.stdout
        assert stdout is not None
        try:
            return protocol.read_until_result(stdout, streams)
        except EOFError:
            if streams is None:
                raise SandboxError(f"container {self.name} exited: {self.cli_error()}") from None
            raise

    def _kill_at_deadline(self) -> None:
        self._killed_at_deadline = True
        logger.warning("container %s passed its wall limit; killing it", self.name)
        subprocess.run(["docker", "kill", self.name], capture_output=True, check=False)

    def _report_died(self, streams: protocol.PhaseStreams, elapsed: float) -> PhaseReport:
        """Report a phase whose container exited before the supervisor sent a result."""
        self.process.wait(timeout=30)
        if self._killed_at_deadline:
            limit: LimitName | None = LimitName.WALL_TIME
        elif self._oom_killed():
            limit = LimitName.MEMORY
        else:
            raise SandboxError(f"container {self.name} exited mid-phase: {self.cli_error()}")
        return PhaseReport(
            stdout=bytes(streams.stdout), stderr=bytes(streams.stderr), time=round(elapsed, 4),
            cpu_time=0.0, memory=None, exit_code=None, signal="SIGKILL", limit_exceeded=limit,
        )

    def _oom_killed(self) -> bool:
        completed = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.OOMKilled}} {{.State.ExitCode}}",
             self.name],
            capture_output=True, text=True, check=False,
        )
        oom_killed, _, exit_code = completed.stdout.strip().partition(" ")
        if oom_killed == "true":
            return True
        # NOTE: under runsc the host's OOM killer kills the whole gVisor sandbox and
        # Docker does not set OOMKilled, so a SIGKILL that Cutor did not send is read as
        # the memory limit. Remove when runsc reports OOM kills to Docker.
        return self.spec.runtime == "runsc" and exit_code == "137"

    def cli_error(self) -> str:
        text = self._cli_stderr.decode(errors="replace").strip()
        return text or f"docker run exited with code {self.process.poll()}"

    def close(self) -> None:
        if self._process is None:
            return
        try:
            if self._process.stdin:
                self._process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        # Not started with --rm, so that the state of a dead container (OOMKilled, exit
        # code) can still be inspected; removed here on every way out.
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, check=False)
        logger.info("removed container %s", self.name)


def _report_from_result(result: dict[str, Any], streams: protocol.PhaseStreams) -> PhaseReport:
    return PhaseReport(
        stdout=bytes(streams.stdout),
        stderr=bytes(streams.stderr),
        time=float(result["time"]),
        cpu_time=float(result["cpu_time"]),
        memory=int(result["memory"]) if result.get("memory") else None,
        exit_code=result["exit_code"],
        signal=result["signal"],
        limit_exceeded=_exceeded_limit(result),
    )


def _exceeded_limit(result: dict[str, Any]) -> LimitName | None:
    # The supervisor names the limit it enforced itself; the kernel's counters name
    # the limits that the cgroup and the tmpfs enforce.
    enforced = result.get("limit_exceeded")
    # A program whose forks failed at the process limit often retries (bash does, busily)
    # until the wall or CPU limit stops it, so the process limit is the cause to report.
    timed_out = enforced in (LimitName.WALL_TIME.value, LimitName.CPU_TIME.value)
    if timed_out and result.get("pids_max"):
        return LimitName.PROCESSES
    if enforced:
        return LimitName(enforced)
    if result.get("oom_kill"):
        return LimitName.MEMORY
    if result.get("pids_max"):
        return LimitName.PROCESSES
    if result.get("disk_full"):
        return LimitName.DISK
    return None
