"""Fixtures for the Nix builder tests, which use the real nix-daemon.

Every derivation the tests write is self-contained (builder /bin/sh, which the build
sandbox maps to busybox) and carries a random token, so each test builds fresh.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cutor.errors import NixError
from cutor.limits import GiB, MiB, PhaseLimits
from cutor.nix import BuildOutcome, build_environment, check_nix
from cutor.settings import Settings

GCROOTS_PARENT = Path("/nix/var/nix/gcroots/cutor")


@pytest.fixture(scope="session", autouse=True)
def _nix_daemon() -> None:
    if os.geteuid() != 0:
        pytest.skip("the Nix builder switches to the Nix user, which needs root")
    try:
        check_nix()
    except NixError as error:
        pytest.fail(f"{error}")


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Settings whose GC roots live in a folder of their own, removed after the tests."""
    roots = GCROOTS_PARENT / f"tests-{secrets.token_hex(6)}"
    yield Settings(nix_gcroots_dir=roots)
    shutil.rmtree(roots, ignore_errors=True)


@pytest.fixture
def limits() -> PhaseLimits:
    return PhaseLimits(
        wall_time=60, cpu_time=30, memory=2 * GiB, processes=64, output=MiB, disk=GiB
    )


@pytest.fixture
def token() -> str:
    return secrets.token_hex(8)


@pytest.fixture
def build(settings: Settings, limits: PhaseLimits) -> Callable[[str], BuildOutcome]:
    """Build a cutor.nix with the default test limits."""

    def run(cutor_nix: str) -> BuildOutcome:
        return build_environment(settings, cutor_nix, limits)

    return run
