"""build_environment against the real nix-daemon: shapes, rebuilds, GC roots, errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cutor.nix import Environment
from cutor.settings import Settings
from nix_sources import Build, derivation, hello_package


def require_environment(environment: Environment | None) -> Environment:
    assert environment is not None
    return environment


def output_path(drv_source: str) -> str:
    """Evaluate a derivation's output path, with no build and no store writes."""
    result = subprocess.run(
        ["nix-instantiate", "--eval", "--expr", f"({drv_source}).outPath"],
        capture_output=True, check=True, text=True,
    )
    return result.stdout.strip().strip('"')


def test_derivation_shape_builds_inputs_only(build: Build, token: str) -> None:
    dependency = hello_package(f"dep-{token}")
    shell = derivation(
        f"shell-{token}", "exit 1",
        extra=f'buildInputs = [ ({dependency}) ]; greeting = "hi there";',
    )

    outcome = build(shell)

    assert outcome.ok, outcome.stderr.decode()
    environment = require_environment(outcome.environment)
    assert environment.store_paths == [output_path(dependency)]
    assert environment.variables["buildInputs"] == output_path(dependency)
    assert environment.variables["greeting"] == "hi there"
    assert environment.variables["name"] == f"shell-{token}"
    # The shell derivation's builder fails, so it must not have been built.
    assert not Path(environment.variables["out"]).exists()
    assert environment.has_stdenv is False
    assert environment.closure_size > 0
    assert outcome.stdout.decode().split() == environment.store_paths


def test_derivation_shape_realises_input_sources(build: Build, token: str) -> None:
    shell = derivation(
        f"shell-{token}", extra=f'script = builtins.toFile "script-{token}" "echo {token}";'
    )

    outcome = build(shell)

    assert outcome.ok, outcome.stderr.decode()
    environment = require_environment(outcome.environment)
    assert len(environment.store_paths) == 1
    source = environment.store_paths[0]
    assert source.endswith(f"-script-{token}")
    assert environment.variables["script"] == source
    assert Path(source).read_text() == f"echo {token}"


def test_list_shape_builds_each_output(build: Build, token: str) -> None:
    first = hello_package(f"first-{token}")
    second = derivation(
        f"second-{token}", "echo out > $out; echo dev > $dev", extra='outputs = [ "out" "dev" ];'
    )

    outcome = build(f"[ ({first}) ({second}).dev ]")

    assert outcome.ok, outcome.stderr.decode()
    environment = require_environment(outcome.environment)
    second_dev = output_path(f"({second}).dev")
    assert environment.store_paths == sorted([output_path(first), second_dev])
    assert Path(second_dev).read_text() == "dev\n"
    assert environment.variables == {}
    assert environment.has_stdenv is False


def test_function_shape_is_called_with_defaults(build: Build, token: str) -> None:
    source = f"""
        {{ greeting ? "hey-{token}", packages ? [ ] }}:
        {derivation(f"shell-{token}", extra="inherit greeting;")}
    """

    outcome = build(source)

    assert outcome.ok, outcome.stderr.decode()
    environment = require_environment(outcome.environment)
    assert environment.variables["greeting"] == f"hey-{token}"


def test_function_without_defaults_is_rejected(build: Build, token: str) -> None:
    outcome = build(f"{{ pkgs, lib ? null }}: {derivation(f'shell-{token}')}")

    assert not outcome.ok
    assert outcome.environment is None
    assert b"arguments that have no default (pkgs)" in outcome.stderr


def test_other_values_are_rejected_with_their_type(build: Build) -> None:
    cases = {
        '"just a string"': b"evaluates to a string",
        "{ a = 1; }": b"evaluates to an attribute set that is not a derivation",
        "42": b"evaluates to an integer",
        "null": b"evaluates to null",
        "x: x": b"evaluates to an attribute set that is not a derivation",
        "[ 1 ]": b"element 0 of the list in cutor.nix is an integer",
    }
    for source, message in cases.items():
        outcome = build(source)
        assert not outcome.ok, source
        assert message in outcome.stderr, outcome.stderr.decode()
        assert b"expected a derivation" in outcome.stderr, source


def test_fake_derivation_is_rejected(build: Build) -> None:
    outcome = build('{ type = "derivation"; drvPath = "/etc/shadow"; }')

    assert not outcome.ok
    assert b"invalid drvPath '/etc/shadow'" in outcome.stderr


def test_second_build_builds_nothing(build: Build, token: str) -> None:
    source = f"[ ({hello_package(f'once-{token}')}) ]"

    first = build(source)
    second = build(source)

    assert first.ok, first.stderr.decode()
    assert second.ok, second.stderr.decode()
    assert b"will be built" in first.stderr
    assert b"building '" in first.stderr
    assert b"will be built" not in second.stderr
    assert b"building '" not in second.stderr
    first_environment = require_environment(first.environment)
    second_environment = require_environment(second.environment)
    assert first_environment.id == second_environment.id
    assert first_environment.store_paths == second_environment.store_paths


def test_gc_roots_keep_environment_alive(build: Build, settings: Settings, token: str) -> None:
    dependency = hello_package(f"rooted-{token}")
    outcome = build(derivation(f"shell-{token}", extra=f"buildInputs = [ ({dependency}) ];"))
    assert outcome.ok, outcome.stderr.decode()
    environment = require_environment(outcome.environment)
    roots = settings.nix_gcroots_dir / environment.id

    links = {os.readlink(link) for link in roots.iterdir()}
    dead = subprocess.run(
        ["nix-store", "--gc", "--print-dead"],
        capture_output=True, check=True, text=True, env={**os.environ, "NIX_REMOTE": "daemon"},
    ).stdout.split()

    assert links == set(environment.store_paths)
    for path in environment.store_paths:
        assert path not in dead
    assert not any(entry.name.startswith(".") for entry in settings.nix_gcroots_dir.iterdir())


def test_syntax_error_reaches_stderr(build: Build) -> None:
    outcome = build("derivation { name = ")

    assert not outcome.ok
    assert outcome.limit_exceeded is None
    assert b"syntax error" in outcome.stderr
    assert b"cutor.nix" in outcome.stderr


def test_evaluation_error_reaches_stderr(build: Build, token: str) -> None:
    outcome = build(f'throw "no such package {token}"')

    assert not outcome.ok
    assert f"no such package {token}".encode() in outcome.stderr


def test_failing_build_reports_log(build: Build, token: str) -> None:
    broken = derivation(f"broken-{token}", f"echo compiler says {token}; exit 3")

    outcome = build(f"[ ({broken}) ]")

    assert not outcome.ok
    assert outcome.environment is None
    assert f"compiler says {token}".encode() in outcome.stderr
    assert b"failed with exit code 3" in outcome.stderr


def test_sandbox_forbids_no_chroot(build: Build, token: str) -> None:
    escape = derivation(f"nochroot-{token}", extra="__noChroot = true;")

    outcome = build(f"[ ({escape}) ]")

    assert not outcome.ok
    assert b"__noChroot" in outcome.stderr


def test_outcome_reports_time(build: Build, token: str) -> None:
    outcome = build(f"[ ({derivation(f'timed-{token}')}) ]")

    assert outcome.ok, outcome.stderr.decode()
    assert outcome.time > 0
    assert outcome.cpu_time > 0
    assert outcome.limit_exceeded is None
