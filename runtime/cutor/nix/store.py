"""Store operations of the environment cache: extra GC roots, validity, closure sizes, GC.

Every command goes through nix-daemon as this process's own user (root in production),
which must be able to write the GC root folders. None of them runs code from a
submission: they only read store metadata, make symlinks and delete store paths.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from cutor.errors import NixError

from .client import find_binary, own_client_env
from .realise import ROOT_NAME, PathInfo

logger = logging.getLogger(__name__)

QUERY_TIMEOUT = 120.0
# A collection walks every root and every store path, so it may take far longer than a
# query on a large store.
GC_TIMEOUT = 1800.0
# Nix 2.8 prints this line on stdout after a collection; the size is "%.2f MiB".
GC_SUMMARY = re.compile(r"(\d+) store paths deleted, ([0-9.]+) MiB freed")
MiB = 1024 * 1024
ERROR_TAIL_BYTES = 4096


@dataclass(frozen=True)
class GarbageReport:
    deleted_paths: int
    # As Nix reports it, rounded to 0.01 MiB.
    freed_bytes: int


def add_roots(folder: Path, store_paths: list[str]) -> bool:
    """Root ``store_paths`` with symlinks in ``folder``; return False if one no longer exists.

    ``nix-store --realise`` fails on a path that is gone, and otherwise registers a
    temporary root with a running collection before it makes the symlink. So once the
    check after it finds every path valid, no collection can delete them until
    ``folder`` is removed. On False, ``folder`` is removed again.
    """
    if not store_paths:
        return True
    # Links left by an earlier try of the same holder would keep paths it no longer uses.
    remove_roots(folder)
    _make_folder(folder)
    argv = [find_binary("nix-store"), "--realise", "--add-root", str(folder / ROOT_NAME),
            "--", *store_paths]
    completed = _run(argv, "nix-store --realise", QUERY_TIMEOUT, check=False)
    if completed.returncode == 0 and not invalid_paths(store_paths):
        return True
    logger.info("GC roots in %s not made: a store path is no longer valid: %s",
                folder, _tail(completed.stderr))
    remove_roots(folder)
    return False


def remove_roots(folder: Path) -> None:
    """Remove a folder of GC roots; the next collection may delete what only it kept."""
    shutil.rmtree(folder, ignore_errors=True)


def rooted_paths(folder: Path) -> list[str]:
    """Return the sorted store paths that the symlinks in ``folder`` point to."""
    try:
        links = list(folder.iterdir())
    except FileNotFoundError:
        return []
    return sorted({str(link.readlink()) for link in links if link.is_symlink()})


def invalid_paths(store_paths: list[str]) -> list[str]:
    """Return the paths of ``store_paths`` that are not valid in the store."""
    if not store_paths:
        return []
    argv = [find_binary("nix-store"), "--check-validity", "--print-invalid", "--",
            *store_paths]
    completed = _run(argv, "nix-store --check-validity", QUERY_TIMEOUT)
    return completed.stdout.decode().split()


def closure_sizes(store_paths: list[str]) -> dict[str, int]:
    """Return the NAR size in bytes of every path in the closure of ``store_paths``.

    Every path of ``store_paths`` must be valid.
    """
    if not store_paths:
        return {}
    argv = [find_binary("nix"), "--extra-experimental-features", "nix-command",
            "path-info", "--json", "--recursive", "--", *store_paths]
    completed = _run(argv, "nix path-info", QUERY_TIMEOUT)
    try:
        entries = json.loads(completed.stdout)
        infos = [PathInfo.model_validate(entry) for entry in entries]
    except (ValueError, TypeError, ValidationError) as error:
        raise NixError(f"nix path-info printed unusable JSON: {error}") from error
    return {info.path: info.nar_size for info in infos}


def collect_garbage() -> GarbageReport:
    """Run ``nix-store --gc``, which deletes every store path that no GC root keeps."""
    completed = _run([find_binary("nix-store"), "--gc"], "nix-store --gc", GC_TIMEOUT)
    match = GC_SUMMARY.search(completed.stdout.decode(errors="replace"))
    if match is None:
        logger.warning("nix-store --gc printed no summary line: %r", completed.stdout[-200:])
        return GarbageReport(deleted_paths=0, freed_bytes=0)
    return GarbageReport(int(match.group(1)), round(float(match.group(2)) * MiB))


def _run(
    argv: list[str], label: str, timeout: float, *, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    # stderr goes to a file: nix-store --gc prints a line for every deleted path.
    with tempfile.TemporaryFile() as errors:
        try:
            completed = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                env=own_client_env(), timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise NixError(f"{label} timed out after {timeout:.0f} s") from error
        except OSError as error:
            raise NixError(f"cannot run {label}: {error}; is nix-bin installed?") from error
        errors.seek(max(errors.seek(0, 2) - ERROR_TAIL_BYTES, 0))
        stderr = errors.read()
    completed.stderr = stderr
    if check and completed.returncode != 0:
        raise NixError(f"{label} failed with exit code {completed.returncode}: {_tail(stderr)}")
    return completed


def _tail(stderr: bytes) -> str:
    return stderr.decode(errors="replace").strip()[-500:]


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NixError(
            f"cannot create the GC root folder {folder}: {error}; run Cutor as root or set "
            "CUTOR_NIX_GCROOTS_DIR"
        ) from error
