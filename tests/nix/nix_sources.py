"""Nix source text for the self-contained derivations the tests build.

There is no nixpkgs here: each builder is /bin/sh, which the build sandbox maps to a
static busybox, so scripts can use busybox applets such as mkdir, printf and chmod.
"""

from __future__ import annotations

from collections.abc import Callable

from cutor.nix import BuildOutcome

Build = Callable[[str], BuildOutcome]


def derivation(name: str, script: str = "touch $out", extra: str = "") -> str:
    """Return Nix source for a derivation whose builder runs ``script`` in busybox sh."""
    quoted = script.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return (
        f'derivation {{ name = "{name}"; system = builtins.currentSystem; '
        f'builder = "/bin/sh"; args = [ "-c" "{quoted}" ]; {extra} }}'
    )


def hello_package(name: str, greeting: str = "hello") -> str:
    """Return Nix source for a derivation whose $out/bin/hello prints ``greeting``."""
    script = (
        "mkdir -p $out/bin && "
        "printf '#!/bin/sh\\necho %s\\n' " + greeting + " > $out/bin/hello && "
        "chmod +x $out/bin/hello"
    )
    return derivation(name, script)
