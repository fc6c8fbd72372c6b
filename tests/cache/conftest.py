"""Fixtures for the environment cache tests: stacks whose GC roots live in folders of their own.

Every stack gets its own GC root folder, so its evictions never touch the roots of
another stack or of a running service. The derivations are self-contained (builder
/bin/sh, which the build sandbox maps to busybox) and carry random tokens, so each test
builds fresh environments.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from cutor.errors import NixError
from cutor.nix import check_nix, environment_id
from cutor.nix.client import nix_version

from tests.conftest import Stack

GCROOTS_PARENT = Path("/nix/var/nix/gcroots/cutor")
StackFactory = Callable[..., AbstractContextManager[Stack]]


@pytest.fixture(scope="session", autouse=True)
def _nix_daemon() -> None:
    if os.geteuid() != 0:
        pytest.skip("the cache builder switches to the Nix user and writes GC roots: needs root")
    try:
        check_nix()
    except NixError as error:
        pytest.fail(f"{error}")


@pytest.fixture(scope="session")
def make_stack(tmp_path_factory: pytest.TempPathFactory) -> StackFactory:
    """Return a context manager that runs a stack with ``overrides`` of its settings."""

    @contextmanager
    def running(**overrides: Any) -> Iterator[Stack]:
        roots = GCROOTS_PARENT / f"tests-cache-{secrets.token_hex(6)}"
        stack = Stack(tmp_path_factory.mktemp("cache-stack"), "runc",
                      nix_gcroots_dir=roots, **overrides)
        try:
            yield stack
        finally:
            stack.stop()
            shutil.rmtree(roots, ignore_errors=True)

    return running


@pytest.fixture(scope="module")
def cache_stack(make_stack: StackFactory) -> Iterator[Stack]:
    """A stack with an unlimited cache, shared by the tests of one module."""
    with make_stack() as stack:
        yield stack


def derivation(name: str, script: str) -> str:
    """Return Nix source for a derivation whose builder runs ``script`` in busybox sh."""
    quoted = script.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return (f'derivation {{ name = "{name}"; system = builtins.currentSystem; '
            f'builder = "/bin/sh"; args = [ "-c" "{quoted}" ]; }}')


def tool(name: str, data_bytes: int = 0, build_seconds: int = 0) -> str:
    """Return Nix source for a package whose ``bin/<name>`` prints ``<name> works``.

    ``data_bytes`` of zeros in ``$out/data`` give the package a known size, and
    ``build_seconds`` keeps its build running that long.
    """
    script = (f"mkdir -p $out/bin; printf '#!/bin/sh\\necho {name} works\\n' > $out/bin/{name}; "
              f"chmod +x $out/bin/{name}")
    if data_bytes:
        script += f"; head -c {data_bytes} /dev/zero > $out/data"
    if build_seconds:
        script += f"; sleep {build_seconds}"
    return derivation(name, script)


def broken(name: str, build_seconds: int = 0) -> str:
    """Return Nix source for a derivation whose build fails with a known message."""
    return derivation(name, f"sleep {build_seconds}; echo {name} is broken >&2; exit 3")


def cutor_nix(*packages: str) -> str:
    """Return a cutor.nix that is a list of the given derivations."""
    return "[\n" + "".join(f"  ({package})\n" for package in packages) + "]\n"


def env_id(stack: Stack, text: str) -> str:
    return environment_id(text, nix_version(), stack.settings.nix_path)


def token() -> str:
    return secrets.token_hex(6)


def submission(text: str, run_sh: str, **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"files": [{"name": "run.sh", "content": run_sh},
                                      {"name": "cutor.nix", "content": text}]}
    body.update(options)
    return body


def wait_for_status(stack: Stack, submission_id: str, status: str,
                    timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        current = stack.client.get(f"/submissions/{submission_id}").json()["status"]
        if current == status:
            return
        assert time.monotonic() < deadline, f"submission {submission_id} still {current}"
        time.sleep(0.05)


def dependency(stack: Stack, environment: str) -> dict[str, Any]:
    response = stack.client.get(f"/dependencies/{environment}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
