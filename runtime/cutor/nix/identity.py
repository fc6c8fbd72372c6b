"""The id of a Nix environment: equal ids mean the same cutor.nix under the same Nix and pins."""

from __future__ import annotations

import hashlib

# Bump when the hashed layout below changes, so that old ids stop matching new ones.
ID_FORMAT = "cutor-nix-environment-v1"


def normalise_cutor_nix(cutor_nix: str) -> str:
    """Normalise cutor.nix text by dropping ASCII whitespace before and after the expression.

    Nothing inside is touched: two texts with the same id share one cached environment,
    so they must mean the same to Nix. Trailing spaces inside an indented string, a
    carriage return, or a Unicode space such as U+00A0 (which Nix rejects as a token) can
    change what a text means, so each of those gives a different id.
    """
    return cutor_nix.strip(" \t\r\n")


def environment_id(cutor_nix: str, nix_version: str, nix_path: str) -> str:
    """Return the hex SHA-256 that names the environment built from ``cutor_nix``.

    The hash covers, in order and each followed by a NUL byte: ``ID_FORMAT``, the Nix
    version, the NIX_PATH (which pins nixpkgs) and the normalised cutor.nix text, all
    encoded as UTF-8. NUL cannot occur in the version or NIX_PATH, so the fields cannot
    run into each other.
    """
    digest = hashlib.sha256()
    for field in (ID_FORMAT, nix_version, nix_path, normalise_cutor_nix(cutor_nix)):
        digest.update(field.encode())
        digest.update(b"\0")
    return digest.hexdigest()
