"""Platform failures: a missing Nix or a silent nix-daemon raise NixError, not ok=False."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cutor.errors import NixError
from cutor.limits import PhaseLimits
from cutor.nix import build_environment, check_nix
from cutor.settings import Settings


def test_check_nix_returns_version() -> None:
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", check_nix())


def test_daemon_down_raises(tmp_path: Path) -> None:
    socket = tmp_path / "no-daemon" / "socket"

    with pytest.raises(NixError, match="start nix-daemon"):
        check_nix(f"unix://{socket}")


def test_missing_nix_raises(
    settings: Settings, limits: PhaseLimits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(NixError, match="install Nix"):
        build_environment(settings, "[ ]", limits)


def test_missing_user_raises(settings: Settings, limits: PhaseLimits) -> None:
    nobody = settings.model_copy(update={"nix_user": "cutor-no-such-user"})

    with pytest.raises(NixError, match="does not exist"):
        build_environment(nobody, "[ ]", limits)


def test_empty_list_builds_empty_environment(settings: Settings, limits: PhaseLimits) -> None:
    outcome = build_environment(settings, "[ ]", limits)

    assert outcome.ok, outcome.stderr.decode()
    assert outcome.environment is not None
    assert outcome.environment.store_paths == []
    assert outcome.environment.closure_size == 0
