"""Find the Nix binaries, give them a clean environment, and check that nix-daemon is up."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from functools import cache

from cutor.errors import NixError

# Every store operation goes through nix-daemon, which runs builds in its sandbox. A
# client with NIX_REMOTE=local would instead build in its own process.
STORE_URI = "daemon"
CHECK_TIMEOUT = 30.0
CLIENT_PATH = "/usr/bin:/bin"


def find_binary(name: str) -> str:
    """Return the absolute path of a Nix binary, or raise NixError saying what to install."""
    found = shutil.which(name)
    if found is None:
        raise NixError(
            f"the Nix binary {name!r} is not on PATH ({os.environ.get('PATH', '')!r}); "
            "install Nix 2.8 or later (Debian package nix-bin), or run scripts/setup.sh"
        )
    return found


def client_env(home: str, user: str, nix_path: str) -> dict[str, str]:
    """Return the whole environment of a Nix client process: nothing is inherited.

    NIX_USER_CONF_FILES is empty so that only /etc/nix/nix.conf configures Nix, and no
    file in the user's home can loosen the options Cutor passes.
    """
    return {
        "HOME": home,
        "USER": user,
        "LOGNAME": user,
        "PATH": CLIENT_PATH,
        "NIX_REMOTE": STORE_URI,
        "NIX_PATH": nix_path,
        "NIX_USER_CONF_FILES": "",
        "LC_ALL": "C.UTF-8",
    }


def own_client_env(nix_path: str = "") -> dict[str, str]:
    """Return the environment for Nix clients that run as this process's own user."""
    entry = pwd.getpwuid(os.geteuid())
    return client_env(entry.pw_dir, entry.pw_name, nix_path)


def check_nix(store_uri: str = STORE_URI) -> str:
    """Return the Nix version after checking that nix-daemon accepts connections at ``store_uri``.

    Raise NixError, naming what to install or start, when it does not.
    """
    nix = find_binary("nix")
    version = nix_version()
    env = own_client_env()
    _run_check(
        [nix, "--extra-experimental-features", "nix-command", "store", "ping",
         "--store", store_uri],
        f"nix store ping --store {store_uri}",
        env=env,
        advice="start nix-daemon (scripts/setup.sh starts it)",
    )
    return version


@cache
def nix_version() -> str:
    """Return the installed Nix version, such as "2.8.0", which environment ids include."""
    output = _run_check([find_binary("nix"), "--version"], "nix --version")
    # "nix (Nix) 2.8.0" -> "2.8.0"
    return output.split()[-1]


def _run_check(
    argv: list[str], label: str, env: dict[str, str] | None = None, advice: str = ""
) -> str:
    try:
        result = subprocess.run(
            argv, capture_output=True, env=env, timeout=CHECK_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise NixError(f"{label} timed out after {CHECK_TIMEOUT:.0f} s; {advice}") from error
    except OSError as error:
        raise NixError(f"cannot run {label}: {error}; install nix-bin") from error
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise NixError(f"{label} failed: {message}; {advice}")
    return result.stdout.decode(errors="replace").strip()
