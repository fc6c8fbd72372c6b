"""Environment ids: stable for the same input, different for a different one."""

from __future__ import annotations

import hashlib
import re

from cutor.nix import environment_id, normalise_cutor_nix

SOURCE = "{ pkgs ? import <nixpkgs> {} }:\npkgs.mkShell {\n  packages = [ pkgs.hello ];\n}"
VERSION = "2.8.0"
NIX_PATH = "nixpkgs=/srv/nixpkgs"


def test_id_is_hex_sha256() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", environment_id(SOURCE, VERSION, NIX_PATH))


def test_id_is_stable() -> None:
    assert environment_id(SOURCE, VERSION, NIX_PATH) == environment_id(SOURCE, VERSION, NIX_PATH)


def test_id_matches_documented_layout() -> None:
    fields = ["cutor-nix-environment-v1", VERSION, NIX_PATH, SOURCE]
    expected = hashlib.sha256(b"".join(f.encode() + b"\0" for f in fields)).hexdigest()
    assert environment_id(SOURCE, VERSION, NIX_PATH) == expected


def test_id_ignores_outer_whitespace() -> None:
    variants = [SOURCE + "\t", "\n\n  \n" + SOURCE + "\n\n\n", "\r\n" + SOURCE + "\r\n"]
    expected = environment_id(SOURCE, VERSION, NIX_PATH)
    for variant in variants:
        assert environment_id(variant, VERSION, NIX_PATH) == expected, repr(variant)


def test_id_keeps_whitespace_that_nix_reads() -> None:
    # Each of these can change what Nix makes of the text, inside an indented string
    # or as an invalid token, so sharing an id with SOURCE would let one submission
    # poison another's cached environment.
    expected = environment_id(SOURCE, VERSION, NIX_PATH)
    variants = [
        SOURCE.replace("\n", "   \n", 1),
        SOURCE.replace("\n", "\r\n"),
        SOURCE.replace("\n", "\u00a0\n", 1),
        SOURCE.replace("\n", "\x1f\n", 1),
    ]
    for variant in variants:
        assert environment_id(variant, VERSION, NIX_PATH) != expected, repr(variant)


def test_id_keeps_indentation_and_inner_blank_lines() -> None:
    reference = environment_id(SOURCE, VERSION, NIX_PATH)
    indented = SOURCE.replace("  packages", "    packages")
    spaced = SOURCE.replace("\n", "\n\n", 1)
    assert environment_id(indented, VERSION, NIX_PATH) != reference
    assert environment_id(spaced, VERSION, NIX_PATH) != reference


def test_id_depends_on_version_and_nix_path() -> None:
    reference = environment_id(SOURCE, VERSION, NIX_PATH)
    assert environment_id(SOURCE, "2.8.1", NIX_PATH) != reference
    assert environment_id(SOURCE, VERSION, "nixpkgs=/srv/other") != reference
    assert environment_id(SOURCE + " ", VERSION, NIX_PATH) == reference
    assert environment_id(SOURCE + "x", VERSION, NIX_PATH) != reference


def test_id_fields_do_not_run_together() -> None:
    assert environment_id("b", "a", "") != environment_id("", "a", "b")


def test_normalise_strips_only_outer_ascii_whitespace() -> None:
    assert normalise_cutor_nix("\r\n  \nfoo  \r\n\n  bar\t\n\n") == "foo  \r\n\n  bar"
    assert normalise_cutor_nix("\u00a0x\u00a0") == "\u00a0x\u00a0"
