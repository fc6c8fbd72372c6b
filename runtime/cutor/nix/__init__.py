"""Build the Nix environments that submissions declare in cutor.nix.

Evaluation runs on the host as the unprivileged Nix user, in restricted mode. Builds run
in nix-daemon's sandbox, and ``shell_prelude`` sets the result up inside the sandbox
container. Nothing from the derivation is sourced or run on the host.
"""

from cutor.nix.build import build_environment
from cutor.nix.client import check_nix
from cutor.nix.identity import environment_id, normalise_cutor_nix
from cutor.nix.models import BuildOutcome, Environment
from cutor.nix.prelude import shell_prelude

__all__ = [
    "BuildOutcome",
    "Environment",
    "build_environment",
    "check_nix",
    "environment_id",
    "normalise_cutor_nix",
    "shell_prelude",
]
