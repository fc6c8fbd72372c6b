"""Evaluate a cutor.nix as the unprivileged Nix user, in Nix's restricted mode.

The evaluator is the only part of a build that runs code from the submission on the
host. So it runs as its own user, with a clean environment and CPU and memory limits.
Every Nix option that lets an expression reach outside the store is turned off.
"""

from __future__ import annotations

import contextlib
import grp
import json
import math
import os
import pwd
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from cutor.errors import NixError
from cutor.limits import LimitName, MiB, PhaseLimits
from cutor.settings import Settings

from . import process
from .client import client_env, find_binary

# The search-path prefix under which the folder holding cutor.nix is visible.
SOURCE_PREFIX = "cutor-submission"
# Debian's nix-bin lets only this group connect to nix-daemon's socket.
DAEMON_GROUP = "nix-users"
# nix-instantiate 2.8 on Debian 12 fails to map its shared libraries with an
# address-space limit of 64 MiB and starts with 128 MiB, so a smaller memory limit is
# raised to this for evaluation.
MIN_ADDRESS_SPACE = 256 * MiB

# Classifies the value of cutor.nix and returns, as JSON, the derivations to realise.
# A function is called with no arguments, as nix-shell does, which needs a default for
# every argument. Reading `drvPath` writes each .drv file to the store.
WRAPPER = """
let
  source = import <@SOURCE_PREFIX@/cutor.nix>;
  expected = "a derivation (such as mkShell returns), a list of derivations, "
    + "or a function whose arguments all have defaults and that returns one of these";
  isDerivation = v: builtins.isAttrs v && (v.type or null) == "derivation";
  typeNames = {
    int = "an integer"; float = "a float"; bool = "a Boolean"; string = "a string";
    path = "a path"; "null" = "null"; list = "a list"; lambda = "a function";
    set = "an attribute set that is not a derivation";
  };
  describe = v: typeNames.${builtins.typeOf v};
  arguments = builtins.functionArgs source;
  required = builtins.filter (name: !arguments.${name}) (builtins.attrNames arguments);
  value =
    if !builtins.isFunction source then source
    else if required == [ ] then source { }
    else throw ("cutor.nix is a function with arguments that have no default ("
      + builtins.concatStringsSep ", " required + "); expected " + expected);
  summary = d: { drvPath = d.drvPath; outputName = d.outputName or "out"; };
  element = index: v:
    if isDerivation v then summary v
    else throw ("element ${toString index} of the list in cutor.nix is ${describe v}; "
      + "expected a derivation");
in
  if isDerivation value then { shape = "derivation"; derivations = [ (summary value) ]; }
  else if builtins.isList value then {
    shape = "list";
    derivations = builtins.genList (i: element i (builtins.elemAt value i)) (builtins.length value);
  }
  else throw "cutor.nix evaluates to ${describe value}; expected ${expected}"
""".replace("@SOURCE_PREFIX@", SOURCE_PREFIX)

OUTPUT_NAME = r"[A-Za-z0-9+\-._?=]+"


class Requested(BaseModel):
    drvPath: str  # noqa: N815 - the attribute name Nix uses
    outputName: str  # noqa: N815

    def installable(self) -> str:
        """Return the ``drv!output`` argument that makes nix-store build one output."""
        return f"{self.drvPath}!{self.outputName}"


class Evaluation(BaseModel):
    shape: Literal["derivation", "list"]
    derivations: list[Requested]


@dataclass(frozen=True)
class NixUser:
    name: str
    home: str
    run_as: process.RunAs


def nix_user(settings: Settings) -> NixUser:
    """Look up the evaluation user, or raise NixError saying how to create it."""
    try:
        entry = pwd.getpwnam(settings.nix_user)
    except KeyError:
        raise NixError(
            f"the Nix user {settings.nix_user!r} does not exist; create it "
            "(scripts/setup.sh does) or set CUTOR_NIX_USER"
        ) from None
    extra: tuple[int, ...] = ()
    with contextlib.suppress(KeyError):
        extra = (grp.getgrnam(DAEMON_GROUP).gr_gid,)
    return NixUser(entry.pw_name, entry.pw_dir, process.RunAs(entry.pw_uid, entry.pw_gid, extra))


def evaluate(
    settings: Settings, cutor_nix: str, limits: PhaseLimits, context: process.BuildContext
) -> Evaluation | None:
    """Evaluate cutor.nix; return None after writing the reason to the transcript.

    Raise process.LimitExceededError when a limit stopped the evaluation.
    """
    user = nix_user(settings)
    folder = _write_source(cutor_nix, user.run_as)
    try:
        address_space = max(limits.memory, MIN_ADDRESS_SPACE)
        env = client_env(user.home, user.name, settings.nix_path)
        # Nix 2.8 allocates a first heap of 384 MiB. Under a smaller address-space limit
        # that allocation fails and prints a "GC Warning" to stderr.
        env["GC_INITIAL_HEAP_SIZE"] = str(min(address_space // 4, 384 * MiB))
        finished = process.run(
            _command(folder, limits.cpu_time, address_space), env=env,
            deadline=context.deadline, transcript=context.transcript,
            run_as=user.run_as, cwd=folder,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if finished.returncode != 0:
        _raise_limit(finished.returncode, context.transcript, limits)
        return None
    return _parse(finished.stdout, settings, context.transcript)


def _write_source(cutor_nix: str, owner: process.RunAs) -> Path:
    """Write cutor.nix into a new folder that only the Nix user can read."""
    folder = Path(tempfile.mkdtemp(prefix="cutor-nix-"))
    source = folder / "cutor.nix"
    try:
        source.write_text(cutor_nix, encoding="utf-8")
        os.chown(source, owner.uid, owner.gid)
        os.chmod(source, 0o600)
        os.chown(folder, owner.uid, owner.gid)
    except PermissionError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise NixError(
            f"cannot give {source} to uid {owner.uid}: {error}; run Cutor's build worker "
            "as root"
        ) from error
    return folder


def _command(folder: Path, cpu_time: float, address_space: int) -> list[str]:
    cpu = math.ceil(cpu_time)
    return [
        # prlimit sets the limits on itself and then runs Nix. The soft CPU limit sends
        # SIGXCPU and the hard one, a second later, SIGKILL. No core file is written
        # when either kills Nix. Sizes must be plain numbers, because util-linux 2.38's
        # prlimit crashes on suffixes such as "1G".
        find_binary("prlimit"), f"--cpu={cpu}:{cpu + 1}", f"--as={address_space}",
        "--core=0", "--",
        find_binary("nix-instantiate"),
        "--eval", "--strict", "--json",
        # --eval alone opens the store read-only, and then no .drv files can be written.
        "--read-write-mode",
        # Restricted mode forbids reading any file outside the search path (the folder
        # below and NIX_PATH), so an expression cannot read host files such as
        # /etc/shadow or the service's credentials, and makes builtins.getEnv return "".
        # Nix 2.8 does not exempt the file named on the command line, hence the -I.
        "--option", "restrict-eval", "true",
        # With no allowed URIs, fetchurl, fetchTarball and fetchGit fail at evaluation.
        # Fixed-output derivations can still download at build time, inside the sandbox.
        "--option", "allowed-uris", "",
        # Import from derivation would run builds during evaluation and feed their
        # output back into the evaluator; builds belong to the realise step.
        "--option", "allow-import-from-derivation", "false",
        # builtins.exec and builtins.importNative run host programs and load host
        # libraries; this is Nix's default, repeated so no nix.conf can turn it on.
        "--option", "allow-unsafe-native-code-during-evaluation", "false",
        "-I", f"{SOURCE_PREFIX}={folder}",
        "--expr", WRAPPER,
    ]


def _raise_limit(returncode: int, transcript: process.Transcript, limits: PhaseLimits) -> None:
    killed = returncode in (-signal.SIGXCPU, -signal.SIGKILL)
    if killed and transcript.cpu_time >= limits.cpu_time:
        transcript.note(f"evaluating cutor.nix used more than {limits.cpu_time} s of CPU time")
        raise process.LimitExceededError(LimitName.CPU_TIME)
    # Nix reports a failed allocation this way once the address-space limit is reached.
    if transcript.stderr.rstrip().endswith(b"error: out of memory"):
        raise process.LimitExceededError(LimitName.MEMORY)


def _parse(output: bytes, settings: Settings, transcript: process.Transcript) -> Evaluation | None:
    store = re.escape(str(settings.nix_store_dir))
    drv_path = re.compile(rf"{store}/[0-9a-z]{{32}}-{OUTPUT_NAME}\.drv")
    try:
        evaluation = Evaluation.model_validate(json.loads(output))
    except (ValueError, ValidationError) as error:
        transcript.note(f"cutor.nix gave a value Cutor cannot read: {error}")
        return None
    for requested in evaluation.derivations:
        # An attribute set can claim `type = "derivation"` with any drvPath.
        if not drv_path.fullmatch(requested.drvPath):
            transcript.note(f"invalid drvPath {requested.drvPath!r} in cutor.nix")
            return None
        if not re.fullmatch(OUTPUT_NAME, requested.outputName):
            transcript.note(f"invalid outputName {requested.outputName!r} in cutor.nix")
            return None
    return evaluation
