"""Limits on a build: wall time, output, CPU time and memory, and what a kill leaves behind."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cutor.limits import MiB, PhaseLimits
from cutor.nix import build_environment
from cutor.settings import Settings
from nix_sources import derivation

# A long evaluation that stays small: each inner list is garbage once counted.
BUSY_EVALUATION = """
  builtins.foldl' (total: i: total + builtins.length (builtins.genList (j: j) 100000))
    0 (builtins.genList (i: i) 1000000)
"""


def processes_mentioning(needle: str) -> list[str]:
    """Return the command lines of running processes that contain ``needle``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in text:
            found.append(text)
    return found


def wait_until_gone(needle: str, seconds: float = 10.0) -> list[str]:
    """Wait for processes mentioning ``needle`` to exit; return those still running."""
    deadline = time.monotonic() + seconds
    while (left := processes_mentioning(needle)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def own_tempdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make cutor.nix folders go into a new folder, so a test can find its evaluator."""
    folder = Path(tempfile.mkdtemp(prefix="cutor-nix-limits-"))
    folder.chmod(0o755)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def limited(limits: PhaseLimits, **changes: float) -> PhaseLimits:
    return limits.model_copy(update=changes)


def test_sleeping_build_is_killed_at_wall_limit(
    settings: Settings, limits: PhaseLimits, token: str
) -> None:
    # The trailing `true` keeps sh alive, so its command line carries the token.
    sleeper = derivation(f"sleeper-{token}", f"sleep 60; true {token}")

    outcome = build_environment(settings, f"[ ({sleeper}) ]", limited(limits, wall_time=2))

    assert not outcome.ok
    assert outcome.limit_exceeded == "wall_time"
    assert outcome.environment is None
    assert 2 <= outcome.time < 10
    assert b"took longer than 2" in outcome.stderr
    assert wait_until_gone(token) == []


def test_busy_evaluation_is_killed_at_wall_limit(
    settings: Settings, limits: PhaseLimits, own_tempdir: Path
) -> None:
    outcome = build_environment(settings, BUSY_EVALUATION, limited(limits, wall_time=2))

    assert not outcome.ok
    assert outcome.limit_exceeded == "wall_time"
    assert outcome.time < 10
    assert wait_until_gone(str(own_tempdir), seconds=1) == []
    assert list(own_tempdir.iterdir()) == []


def test_busy_evaluation_is_killed_at_cpu_limit(settings: Settings, limits: PhaseLimits) -> None:
    outcome = build_environment(settings, BUSY_EVALUATION, limited(limits, cpu_time=1))

    assert not outcome.ok
    assert outcome.limit_exceeded == "cpu_time"
    assert outcome.cpu_time >= 1
    assert b"more than 1" in outcome.stderr


def test_large_evaluation_is_stopped_at_memory_limit(
    settings: Settings, limits: PhaseLimits
) -> None:
    source = 'builtins.length (builtins.genList (i: "s${toString i}") 100000000)'

    outcome = build_environment(settings, source, limited(limits, memory=256 * MiB))

    assert not outcome.ok
    assert outcome.limit_exceeded == "memory"
    assert b"out of memory" in outcome.stderr


def test_endless_build_log_is_cut_at_output_limit(
    settings: Settings, limits: PhaseLimits, token: str
) -> None:
    chatter = derivation(f"chatter-{token}", f"while true; do echo {token} log line; done")

    outcome = build_environment(settings, f"[ ({chatter}) ]", limited(limits, output=64 * 1024))

    assert not outcome.ok
    assert outcome.limit_exceeded == "output"
    assert len(outcome.stderr) == 64 * 1024
    assert f"{token} log line".encode() in outcome.stderr
    assert outcome.time < 30
    assert wait_until_gone(f"chatter-{token}") == []


def test_endless_trace_is_cut_at_output_limit(settings: Settings, limits: PhaseLimits) -> None:
    source = """
      builtins.foldl' (total: i: builtins.trace "trace line ${toString i}" total)
        0 (builtins.genList (i: i) 10000000)
    """

    outcome = build_environment(settings, source, limited(limits, output=16 * 1024))

    assert not outcome.ok
    assert outcome.limit_exceeded == "output"
    assert len(outcome.stderr) == 16 * 1024
    assert outcome.stderr.startswith(b"trace: trace line 0\n")
