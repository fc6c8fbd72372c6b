"""The Docker Engine and the sandbox image: python3, a C toolchain, and no network."""

from __future__ import annotations

import subprocess

from cutor.image import sandbox_image_tag

C_PROGRAM = '#include <stdio.h>\nint main(void) { printf("%d\\n", 6 * 7); return 0; }\n'


def docker_run(*command: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "run", "--rm", *options, sandbox_image_tag(), *command],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_image_runs_python3() -> None:
    result = docker_run("python3", "-c", "print(sum(range(10)))")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "45\n"


def test_image_compiles_and_runs_c() -> None:
    script = f"cd /tmp && printf '%s' '{C_PROGRAM}' > a.c && gcc -O2 -o a a.c && ./a"
    result = docker_run("bash", "-c", script, options=("--tmpfs", "/tmp:exec"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "42\n"


def test_image_has_utf8_locale() -> None:
    result = docker_run("python3", "-c", "import sys; print(sys.getfilesystemencoding(), 'é')")
    assert result.stdout == "utf-8 é\n"


def test_network_none_has_no_network() -> None:
    probe = (
        "import socket\n"
        "s = socket.socket(); s.settimeout(3)\n"
        "try:\n"
        "    s.connect(('192.0.2.1', 80)); print('connected')\n"
        "except OSError as error:\n"
        "    print('failed', error.errno)\n"
        "print(sorted(name for _, name in socket.if_nameindex()))\n"
    )
    result = docker_run("python3", "-c", probe, options=("--network", "none"))
    lines = result.stdout.splitlines()
    assert lines[0].startswith("failed"), result.stdout
    assert lines[1] == "['lo']"
