"""The nix-daemon: sandboxed builds for an unprivileged client, and no rebuild of a cached one."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

NIX_USER = "cutor"


def run_as_nix_user(*command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    home = pwd.getpwnam(NIX_USER).pw_dir
    environment = {"PATH": os.environ["PATH"], "HOME": home, "NIX_REMOTE": "daemon"}
    return subprocess.run(
        list(command), capture_output=True, text=True, timeout=300, check=False,
        user=NIX_USER, group=NIX_USER, extra_groups=["nix-users"], env=environment, cwd=cwd,
    )


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the unprivileged Nix user can read (pytest's shared_dir is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="cutor-nix-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def write_expression(folder: Path, nonce: str) -> Path:
    path = folder / "default.nix"
    path.write_text(
        "derivation {\n"
        f'  name = "foundation-{nonce}";\n'
        "  system = builtins.currentSystem;\n"
        '  builder = "/bin/sh";\n'
        f'  args = [ "-c" "echo {nonce} > $out; id -u >> $out" ];\n'
        "}\n"
    )
    path.chmod(0o644)
    return path


def test_unprivileged_client_builds_in_sandbox(shared_dir: Path) -> None:
    nonce = secrets.token_hex(8)
    expression = write_expression(shared_dir, nonce)
    built = run_as_nix_user("nix-build", "--no-out-link", str(expression), cwd=shared_dir)
    assert built.returncode == 0, built.stderr
    output = Path(built.stdout.strip()).read_text().split()
    assert output[0] == nonce
    # The builder ran as a nixbld user, not as root and not as the client.
    assert output[1] not in ("0", str(pwd.getpwnam(NIX_USER).pw_uid))


def test_second_evaluation_does_not_rebuild(shared_dir: Path) -> None:
    expression = write_expression(shared_dir, secrets.token_hex(8))
    first = run_as_nix_user("nix-build", "--no-out-link", str(expression), cwd=shared_dir)
    second = run_as_nix_user("nix-build", "--no-out-link", str(expression), cwd=shared_dir)
    assert first.returncode == 0, first.stderr
    assert "will be built" in first.stderr
    assert second.returncode == 0, second.stderr
    assert "will be built" not in second.stderr
    assert first.stdout == second.stdout


def test_sandbox_is_enabled() -> None:
    shown = subprocess.run(
        ["nix", "show-config"], capture_output=True, text=True, check=True, timeout=60
    )
    settings = dict(
        line.split(" = ", 1) for line in shown.stdout.splitlines() if " = " in line
    )
    assert settings["sandbox"] == "true"
    assert settings["substituters"] == ""
