"""The result of building a Nix environment."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Environment(BaseModel):
    """A built Nix environment, ready to be set up inside a sandbox container.

    ``variables`` is empty exactly when cutor.nix gave a list of derivations, because a
    single derivation always has at least ``name``, ``system`` and ``builder``.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    # The derivation's environment attributes, as ``nix show-derivation`` prints them.
    variables: dict[str, str]
    # Realised store paths, sorted: the outputs of the derivation's inputs and its input
    # sources, or the outputs of the listed derivations.
    store_paths: list[str]
    # Bytes of the NARs of every path in the closure of ``store_paths``.
    closure_size: int
    # True when ``$stdenv/setup`` exists, so the prelude sources it as nix-shell does.
    has_stdenv: bool


class BuildOutcome(BaseModel):
    """The result of one ``build_environment`` call, in the shape of a sandbox phase result."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    # The realised store paths, one a line.
    stdout: bytes
    # Nix's messages and the build logs, cut at the phase's output limit.
    stderr: bytes
    # Wall-clock seconds.
    time: float
    # CPU seconds of the Nix client processes. Builds run inside nix-daemon and are not
    # counted.
    cpu_time: float
    # A ``LimitName`` value ("wall_time", "cpu_time", "memory", "output") or None.
    limit_exceeded: str | None
    environment: Environment | None
