"""shell_prelude, run inside the sandbox image on environments the tests built themselves.

Without Docker the scripts run in a bash subprocess with an empty environment. That is
safe only because every derivation here is the tests' own.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess

import pytest
from cutor.image import sandbox_image_tag
from cutor.nix import Environment, shell_prelude
from nix_sources import Build, derivation, hello_package

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


@functools.cache
def sandbox_image() -> str | None:
    """Return the sandbox image tag if Docker runs and has the image, else None."""
    if shutil.which("docker") is None:
        return None
    tag = sandbox_image_tag()
    found = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    return tag if found.returncode == 0 else None


def run_prelude(environment: Environment, commands: str, base_path: str = BASE_PATH) -> str:
    """Run the prelude and then ``commands`` with bash; return stdout, failing on errors."""
    script = shell_prelude(environment, base_path) + "\n" + commands + "\n"
    image = sandbox_image()
    if image is not None:
        argv = ["docker", "run", "--rm", "-i", "--network", "none", "--user", "1000:1000",
                "-v", "/nix/store:/nix/store:ro", image, "bash", "-s"]
    else:
        argv = ["env", "-i", "bash", "-s"]
    result = subprocess.run(
        argv, input=script, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def built(build: Build, source: str) -> Environment:
    outcome = build(source)
    assert outcome.ok, outcome.stderr.decode()
    assert outcome.environment is not None
    return outcome.environment


def test_hello_input_is_on_path(build: Build, token: str) -> None:
    hello = hello_package(f"hello-{token}", greeting=f"hello-{token}")
    environment = built(
        build, derivation(f"shell-{token}", extra=f"buildInputs = [ ({hello}) ];")
    )

    output = run_prelude(environment, 'hello; echo "$PATH"')

    greeting, path = output.splitlines()
    assert greeting == f"hello-{token}"
    assert path == f"{environment.store_paths[0]}/bin:{BASE_PATH}"


def test_input_attributes_keep_their_order(build: Build, token: str) -> None:
    native = hello_package(f"native-{token}", greeting="native")
    regular = hello_package(f"regular-{token}", greeting="regular")
    no_bin = derivation(f"nobin-{token}", "mkdir $out")
    environment = built(build, derivation(
        f"shell-{token}",
        extra=f"buildInputs = [ ({regular}) ({no_bin}) ]; nativeBuildInputs = [ ({native}) ];",
    ))

    output = run_prelude(environment, 'hello; echo "$PATH"')

    greeting, path = output.splitlines()
    assert greeting == "native"
    entries = path.split(":")
    assert len(entries) == 5
    assert entries[0].endswith(f"-native-{token}/bin")
    assert entries[1].endswith(f"-regular-{token}/bin")
    assert ":".join(entries[2:]) == BASE_PATH


def test_listed_outputs_are_on_path(build: Build, token: str) -> None:
    hello = hello_package(f"listed-{token}", greeting=f"listed-{token}")
    environment = built(build, f"[ ({hello}) ]")

    output = run_prelude(environment, "hello")

    assert output == f"listed-{token}\n"


def test_base_path_stays_last(build: Build, token: str) -> None:
    environment = built(build, f"[ ({hello_package(f'base-{token}')}) ]")

    output = run_prelude(environment, 'echo "$PATH"', base_path="/usr/bin:/bin")

    assert output == f"{environment.store_paths[0]}/bin:/usr/bin:/bin\n"


def test_variables_are_quoted_exactly(build: Build, token: str) -> None:
    tricky = "it's \\\"quoted\\\" $(touch /tmp/pwned) `id` \\${HOME} ; & | \\n second line"
    environment = built(build, derivation(
        f"shell-{token}", extra=f'tricky = "{tricky}"; "with-dash" = "x"; "1abc" = "y";'
    ))

    output = run_prelude(
        environment, 'printf %s "$tricky"; echo; echo "$name"; test ! -e /tmp/pwned && echo safe'
    )

    expected = environment.variables["tricky"]
    assert "\n" in expected
    assert output == f"{expected}\nshell-{token}\nsafe\n"


def test_invalid_names_are_skipped() -> None:
    environment = Environment(
        id="x", store_paths=[], closure_size=0, has_stdenv=False,
        variables={"with-dash": "a", "1abc": "b", "UID": "0", "good_name": "c"},
    )

    prelude = shell_prelude(environment)

    assert "with-dash" not in prelude
    assert "1abc" not in prelude
    assert "export UID" not in prelude
    assert "export good_name=c" in prelude


def test_shell_hook_runs_without_stdenv(build: Build, token: str) -> None:
    hook = 'export HOOKED=\\"$name\\"'
    environment = built(build, derivation(f"shell-{token}", extra=f'shellHook = "{hook}";'))

    output = run_prelude(environment, 'echo "$HOOKED $IN_NIX_SHELL"')

    assert output == f"shell-{token} impure\n"


def test_pass_as_file_writes_a_file(build: Build, token: str) -> None:
    environment = built(build, derivation(
        f"shell-{token}", extra=f'passAsFile = [ "big" ]; big = "content {token}";'
    ))

    output = run_prelude(environment, 'cat "$bigPath"; echo; echo "${big-unset}"')

    assert output == f"content {token}\nunset\n"


def test_stdenv_setup_is_sourced(build: Build, token: str) -> None:
    # A stand-in for nixpkgs' stdenv: its setup sets PATH and defines runHook.
    setup = (
        "export FROM_SETUP=yes; PATH=/setup/bin; "
        "runHook() { eval \\\"$shellHook\\\"; }"
    )
    stdenv = derivation(
        f"stdenv-{token}", "mkdir $out && cp $setupScript $out/setup",
        extra=f'setupScript = builtins.toFile "setup-{token}" "{setup}";',
    )
    environment = built(build, derivation(
        f"shell-{token}",
        extra=f'stdenv = {stdenv}; shellHook = "export HOOKED=by-runHook";',
    ))

    output = run_prelude(environment, 'echo "$FROM_SETUP $HOOKED $PATH"')

    assert environment.has_stdenv is True
    assert output == f"yes by-runHook /setup/bin:{BASE_PATH}\n"


@pytest.mark.parametrize("tz", ["", "Europe/Paris"])
def test_time_zone_is_restored(tz: str) -> None:
    environment = Environment(
        id="x", variables={"TZ": "UTC", "name": "n"}, store_paths=[],
        closure_size=0, has_stdenv=False,
    )
    setting = f"export TZ={shlex.quote(tz)}; " if tz else "unset TZ; "
    prelude = shell_prelude(environment)

    result = subprocess.run(
        ["env", "-i", "bash", "-c", setting + prelude + '\necho "${TZ-unset}"'],
        capture_output=True, text=True, check=True,
    )

    assert result.stdout == (f"{tz}\n" if tz else "unset\n")
