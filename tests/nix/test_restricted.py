"""Restricted evaluation: a cutor.nix cannot read host files, the environment or the net.

The secret file is world-readable, so only Nix's restricted mode, not file permissions,
keeps it from the evaluator.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cutor.limits import PhaseLimits
from cutor.nix import BuildOutcome, build_environment
from cutor.settings import Settings
from nix_sources import Build, derivation


@pytest.fixture
def secret_file() -> Iterator[tuple[Path, str]]:
    folder = Path(tempfile.mkdtemp(prefix="cutor-nix-secret-"))
    folder.chmod(0o755)
    secret = f"secret-{secrets.token_hex(12)}"
    path = folder / "credentials"
    path.write_text(secret)
    path.chmod(0o644)
    yield path, secret
    shutil.rmtree(folder)


def assert_not_leaked(outcome: BuildOutcome, secret: str) -> None:
    assert secret.encode() not in outcome.stdout
    assert secret.encode() not in outcome.stderr
    if outcome.environment is not None:
        assert secret not in str(outcome.environment.variables)


def carrying(token: str, value: str) -> str:
    """Return a derivation whose attribute `leak` is the Nix expression ``value``."""
    return derivation(f"escape-{token}", extra=f"leak = {value};")


FORBIDDEN = {
    "readFile": ("builtins.readFile {secret}", "access to absolute path '{secret}' is forbidden"),
    "import": ("import {secret}", "access to absolute path '{secret}' is forbidden"),
    "relative path": (
        "builtins.readFile ./{relative}", "access to absolute path '{secret}' is forbidden"
    ),
    "readDir": ("builtins.toJSON (builtins.readDir {folder})", "is forbidden in restricted mode"),
    "path copy": ("builtins.path {{ path = {folder}; }}", "is forbidden in restricted mode"),
    "etc passwd": ("builtins.readFile /etc/passwd", "access to absolute path '/etc/passwd'"),
    "import etc": ("import /etc/hostname", "access to absolute path '/etc/hostname'"),
    "root home": ("builtins.readFile /root/.profile", "access to absolute path '/root/.profile'"),
    "store": ("builtins.toJSON (builtins.readDir /nix/store)", "access to absolute path"),
    "fetchurl": (
        'builtins.fetchurl "http://127.0.0.1:1/{name}"',
        "access to URI 'http://127.0.0.1:1/{name}' is forbidden in restricted mode",
    ),
    "fetchTarball": (
        'builtins.fetchTarball "file://{secret}"', "is forbidden in restricted mode"
    ),
    "nixpkgs": (
        "import <nixpkgs> {{ }}", "file 'nixpkgs' was not found in the Nix search path"
    ),
    "exec": ('builtins.exec [ "cat" "{secret}" ]', "attribute 'exec' missing"),
}


@pytest.mark.parametrize("case", sorted(FORBIDDEN))
def test_escape_fails_without_leak(
    case: str, build: Build, token: str, secret_file: tuple[Path, str]
) -> None:
    path, secret = secret_file
    template, message = FORBIDDEN[case]
    fields = {
        "secret": str(path),
        "folder": str(path.parent),
        # cutor.nix sits in its own folder under the temporary folder, like the secret.
        "relative": "../" + os.path.relpath(path, tempfile.gettempdir()),
        "name": path.name,
    }

    outcome = build(carrying(token, template.format(**fields)))

    assert not outcome.ok
    assert outcome.environment is None
    assert message.format(**fields).encode() in outcome.stderr, outcome.stderr.decode()
    assert_not_leaked(outcome, secret)


def test_get_env_returns_empty(
    build: Build, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"secret-{secrets.token_hex(12)}"
    monkeypatch.setenv("CUTOR_TEST_SECRET", secret)

    outcome = build(carrying(token, 'builtins.getEnv "CUTOR_TEST_SECRET" + builtins.getEnv "HOME"'))

    assert outcome.ok, outcome.stderr.decode()
    assert outcome.environment is not None
    assert outcome.environment.variables["leak"] == ""
    assert_not_leaked(outcome, secret)


def test_path_exists_hides_host_files(
    build: Build, token: str, secret_file: tuple[Path, str]
) -> None:
    path, secret = secret_file

    outcome = build(carrying(token, f"builtins.toJSON (builtins.pathExists {path})"))

    assert outcome.ok, outcome.stderr.decode()
    assert outcome.environment is not None
    assert outcome.environment.variables["leak"] == "false"
    assert_not_leaked(outcome, secret)


def test_import_from_derivation_is_disabled(build: Build, token: str) -> None:
    generated = derivation(f"generated-{token}", "echo 42 > $out")

    outcome = build(carrying(token, f"builtins.readFile ({generated})"))

    assert not outcome.ok
    assert b"because the option 'allow-import-from-derivation' is disabled" in outcome.stderr


def test_nix_path_entries_are_readable(
    settings: Settings, limits: PhaseLimits, token: str, secret_file: tuple[Path, str]
) -> None:
    path, secret = secret_file
    pinned = settings.model_copy(update={"nix_path": f"pinned={path.parent}"})

    outcome = build_environment(
        pinned, carrying(token, f"builtins.readFile <pinned/{path.name}>"), limits
    )

    assert outcome.ok, outcome.stderr.decode()
    assert outcome.environment is not None
    assert outcome.environment.variables["leak"] == secret
