"""Run Nix client processes under a shared deadline and output budget.

Every process gets its own process group, so a timeout or an output overflow can kill
it together with anything it started. Output is read while it is produced and never
kept beyond the limit, so an endless build log cannot fill the host's memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cutor.errors import NixError
from cutor.limits import LimitName

logger = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
# Largest output Cutor parses itself (JSON from nix-instantiate, show-derivation and
# path-info). A cutor.nix could make these large, so they are bounded too.
MAX_INTERNAL_OUTPUT = 64 * 1024 * 1024


class LimitExceededError(Exception):
    """A process was killed because it ran into a limit."""

    def __init__(self, limit: LimitName) -> None:
        super().__init__(limit.value)
        self.limit = limit


@dataclass(frozen=True)
class RunAs:
    """The user and groups a child process switches to before it runs."""

    uid: int
    gid: int
    extra_groups: tuple[int, ...] = ()


@dataclass
class Transcript:
    """The output returned to the client, bounded per stream, and the CPU time used so far."""

    limit: int
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    cpu_time: float = 0.0

    def add(self, stream: bytearray, data: bytes) -> bool:
        """Append ``data`` up to the limit; return False when some of it did not fit."""
        room = self.limit - len(stream)
        stream += data[: max(room, 0)]
        return len(data) <= room

    def note(self, message: str) -> None:
        """Append a message of Cutor's own to stderr, as Nix does with its errors."""
        self.add(self.stderr, f"error: {message}\n".encode())


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: bytes


@dataclass(frozen=True)
class BuildContext:
    """One build's environment id, deadline and transcript, shared by its Nix commands."""

    env_id: str
    # A time.monotonic() value.
    deadline: float
    transcript: Transcript
    allow_fixed_output: bool = False


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    deadline: float,
    transcript: Transcript,
    run_as: RunAs | None = None,
    cwd: Path | None = None,
) -> Finished:
    """Run ``argv`` to completion, copying its stderr to the transcript; return its stdout.

    Raise LimitExceededError after killing the process group when ``deadline`` (a
    ``time.monotonic()`` value) passes or the output limit is exceeded. Raise NixError
    when the program cannot be started.
    """
    process = _start(argv, env=env, run_as=run_as, cwd=cwd)
    try:
        stdout = _collect(process, deadline, transcript)
    except BaseException as error:
        # Whatever stopped the reading, the process must not outlive this call.
        _kill_group(process)
        transcript.cpu_time += _reap(process)[1]
        if isinstance(error, LimitExceededError):
            logger.info("killed %s: %s limit exceeded", argv[0], error.limit.value)
        raise
    returncode, cpu_time = _reap(process)
    transcript.cpu_time += cpu_time
    return Finished(returncode, stdout)


def _start(
    argv: Sequence[str], *, env: Mapping[str, str], run_as: RunAs | None, cwd: Path | None
) -> subprocess.Popen[bytes]:
    identity: dict[str, object] = {}
    if run_as is not None:
        identity = {"user": run_as.uid, "group": run_as.gid, "extra_groups": run_as.extra_groups}
    try:
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            **identity,
        )
    except PermissionError as error:
        raise NixError(
            f"cannot start {argv[0]} as uid {run_as.uid if run_as else os.getuid()}: "
            f"{error}; Cutor's build worker must run as root to switch to the Nix user"
        ) from error
    except OSError as error:
        raise NixError(f"cannot start {argv[0]}: {error}; is nix-bin installed?") from error


def _collect(process: subprocess.Popen[bytes], deadline: float, transcript: Transcript) -> bytes:
    """Read both pipes until they close; return stdout, which only Cutor reads."""
    assert process.stdout is not None and process.stderr is not None
    internal = bytearray()
    targets = {
        process.stdout.fileno(): internal,
        process.stderr.fileno(): transcript.stderr,
    }
    with selectors.DefaultSelector() as selector:
        for descriptor in targets:
            selector.register(descriptor, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LimitExceededError(LimitName.WALL_TIME)
            for key, _ in selector.select(timeout=remaining):
                descriptor = int(key.fd)
                data = os.read(descriptor, READ_SIZE)
                if not data:
                    selector.unregister(descriptor)
                elif not _keep(targets[descriptor], data, internal, transcript):
                    raise LimitExceededError(LimitName.OUTPUT)
    return bytes(internal)


def _keep(target: bytearray, data: bytes, internal: bytearray, transcript: Transcript) -> bool:
    if target is internal:
        internal += data
        return len(internal) <= MAX_INTERNAL_OUTPUT
    return transcript.add(target, data)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # The child called setsid(), so its pid is also its process group id.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _reap(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for the process and return its exit code and the CPU seconds it used."""
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    process.stderr.close()
    _, status, usage = os.wait4(process.pid, 0)
    # Popen skips waiting once returncode is set, so it never waits for this pid again.
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_utime + usage.ru_stime
