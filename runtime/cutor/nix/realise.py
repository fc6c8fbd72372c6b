"""Build the paths an evaluated cutor.nix requests, and keep them alive with GC roots.

These commands run as Cutor's own user (root in production), never as the Nix user,
because they write the GC roots. They run no code from the submission on the host:
nix-daemon runs every build in its sandbox.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cutor.errors import NixError

from . import process
from .client import find_binary, own_client_env
from .evaluate import Evaluation

logger = logging.getLogger(__name__)

# Name of the root symlinks; nix-store adds "-2", "-dev" and so on for further paths.
ROOT_NAME = "input"
# nix-daemon's own build timeout is set this much beyond Cutor's wall-time deadline, as
# a backstop in case killing the client does not stop a build.
DAEMON_TIMEOUT_MARGIN = 10
SWAP_ATTEMPTS = 5


class ShownDerivation(BaseModel):
    """The parts of one entry of ``nix show-derivation`` that Cutor uses."""

    model_config = ConfigDict(populate_by_name=True)

    env: dict[str, str]
    input_drvs: dict[str, list[str]] = Field(alias="inputDrvs")
    input_srcs: list[str] = Field(alias="inputSrcs")


class PathInfo(BaseModel):
    path: str
    nar_size: int = Field(alias="narSize")


@dataclass(frozen=True)
class Realised:
    variables: dict[str, str]
    store_paths: list[str]


def run_nix(argv: list[str], what: str, context: process.BuildContext) -> bytes | None:
    """Run a Nix command as this process's user; return its stdout, or None if it failed."""
    finished = process.run(
        argv, env=own_client_env(), deadline=context.deadline, transcript=context.transcript
    )
    if finished.returncode != 0:
        logger.info("environment %s: %s failed with exit code %d",
                    context.env_id, what, finished.returncode)
        context.transcript.note(f"{what} failed with exit code {finished.returncode}")
        return None
    return finished.stdout


def parse_json(output: bytes, what: str) -> Any:
    try:
        return json.loads(output)
    except ValueError as error:
        raise NixError(f"{what} printed invalid JSON: {error}") from error


def realise(evaluation: Evaluation, roots: Path, context: process.BuildContext) -> Realised | None:
    """Build the requested paths, root them under ``roots`` and return what was built.

    Return None after noting the reason in the transcript. Raise process.LimitExceededError
    when a limit stopped a command.
    """
    variables: dict[str, str] = {}
    if evaluation.shape == "derivation":
        derivation = show_derivation(evaluation.derivations[0].drvPath, context)
        if derivation is None:
            return None
        variables = derivation.env
        # As nix-shell does: build the inputs of the shell derivation, not itself.
        installables = [f"{drv}!{','.join(outputs)}"
                        for drv, outputs in derivation.input_drvs.items()]
        installables += derivation.input_srcs
    else:
        installables = [requested.installable() for requested in evaluation.derivations]
    store_paths = build_with_roots(sorted(set(installables)), roots, context)
    if store_paths is None:
        return None
    return Realised(variables, store_paths)


def show_derivation(drv_path: str, context: process.BuildContext) -> ShownDerivation | None:
    argv = [find_binary("nix"), "--extra-experimental-features", "nix-command",
            "show-derivation", "--", drv_path]
    output = run_nix(argv, "nix show-derivation", context)
    if output is None:
        return None
    try:
        return ShownDerivation.model_validate(parse_json(output, "nix show-derivation")[drv_path])
    except (KeyError, ValidationError) as error:
        raise NixError(f"nix show-derivation printed no usable entry for {drv_path}") from error


def build_with_roots(
    installables: list[str], roots: Path, context: process.BuildContext
) -> list[str] | None:
    """Realise ``installables`` with a GC root for each output, and return the outputs.

    The roots are made in a staging folder next to ``roots`` and then moved into its
    place, so the environment's paths stay rooted while an old set is replaced.
    """
    staging = roots.parent / f".{roots.name}.new-{secrets.token_hex(4)}"
    _make_folder(staging)
    try:
        if installables and not _realise_into(installables, staging, context):
            return None
        store_paths = sorted({os.readlink(link) for link in staging.iterdir()})
        _swap_into_place(staging, roots)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return store_paths


def unbuilt_fixed_output(installables: list[str], context: process.BuildContext) -> list[str]:
    """Return the fixed-output derivations that realising ``installables`` would build.

    Nix builds a fixed-output derivation with the network open (its output hash is
    checked afterwards), so such a build could reach the host's loopback services or a
    cloud metadata endpoint. Ones whose output is already in the store are not built.
    """
    drvs = sorted({item.split("!")[0] for item in installables if ".drv" in item})
    if not drvs:
        return []
    argv = [find_binary("nix"), "--extra-experimental-features", "nix-command",
            "show-derivation", "--recursive", "--", *drvs]
    output = run_nix(argv, "nix show-derivation --recursive", context)
    if output is None:
        raise NixError("nix show-derivation --recursive failed on instantiated derivations")
    fixed: dict[str, list[str]] = {}
    for drv, entry in parse_json(output, "nix show-derivation").items():
        outputs = entry.get("outputs", {}).values()
        if any("hash" in value for value in outputs):
            fixed[drv] = [value["path"] for value in outputs]
    if not fixed:
        return []
    paths = [path for outputs in fixed.values() for path in outputs]
    checked = run_nix([find_binary("nix-store"), "--check-validity", "--print-invalid", *paths],
                      "nix-store --check-validity", context)
    invalid = set((checked or b"").decode().split())
    return sorted(drv for drv, outputs in fixed.items() if invalid & set(outputs))


def _realise_into(installables: list[str], staging: Path, context: process.BuildContext) -> bool:
    if not context.allow_fixed_output:
        fetching = unbuilt_fixed_output(installables, context)
        if fetching:
            context.transcript.note(
                "these fixed-output derivations would download during the build, and Cutor "
                "builds have no network: " + ", ".join(fetching) + "; ask the operator to "
                "build them on the host or set CUTOR_NIX_ALLOW_FIXED_OUTPUT=true"
            )
            return False
    remaining = max(context.deadline - time.monotonic(), 1.0)
    argv = [
        find_binary("nix-store"), "--realise",
        # nix-store 2.8 also links each root from gcroots/auto. Those links go stale
        # when the staging folder is renamed, and the next garbage collection removes
        # them.
        "--add-root", str(staging / ROOT_NAME),
        # The root user is a trusted client, so nix-daemon applies these per build.
        # Sandboxing is forced on and may not fall back to an unsandboxed build, even
        # if nix.conf allows it.
        "--option", "sandbox", "true",
        "--option", "sandbox-fallback", "false",
        "--option", "timeout", str(math.ceil(remaining) + DAEMON_TIMEOUT_MARGIN),
        "--", *installables,
    ]
    return run_nix(argv, "nix-store --realise", context) is not None


def closure_size(store_paths: list[str], context: process.BuildContext) -> int | None:
    """Return the NAR bytes of the closure of ``store_paths``, each path counted once."""
    if not store_paths:
        return 0
    argv = [find_binary("nix"), "--extra-experimental-features", "nix-command",
            "path-info", "--json", "--recursive", "--", *store_paths]
    output = run_nix(argv, "nix path-info", context)
    if output is None:
        return None
    try:
        infos = [PathInfo.model_validate(entry) for entry in parse_json(output, "nix path-info")]
    except ValidationError as error:
        raise NixError(f"nix path-info printed an unusable entry: {error}") from error
    return sum({info.path: info.nar_size for info in infos}.values())


def _make_folder(folder: Path) -> None:
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o755)
    except OSError as error:
        raise NixError(
            f"cannot create the GC root folder {folder}: {error}; run Cutor as root, create "
            f"{folder.parent} (scripts/setup.sh does) or set CUTOR_NIX_GCROOTS_DIR"
        ) from error


def _swap_into_place(staging: Path, roots: Path) -> None:
    """Rename ``staging`` to ``roots``, moving an existing ``roots`` out of the way.

    The old roots are deleted only after the new ones are in place, so paths that both
    sets share are rooted throughout.
    """
    replaced: list[Path] = []
    for _ in range(SWAP_ATTEMPTS):
        try:
            staging.rename(roots)
            break
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise NixError(f"cannot move GC roots to {roots}: {error}") from error
        old = roots.parent / f".{roots.name}.old-{secrets.token_hex(4)}"
        with contextlib.suppress(FileNotFoundError):
            roots.rename(old)
            replaced.append(old)
    else:
        raise NixError(f"cannot replace the GC roots in {roots}: other builds keep replacing it")
    for old in replaced:
        shutil.rmtree(old, ignore_errors=True)
