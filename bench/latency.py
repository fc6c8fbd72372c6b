"""Measure submission latency, POST to FINISHED, against a bare `docker run` in the same run.

Usage: .venv/bin/python -m bench.latency [ROUNDS]

Starts its own MinIO, runner and API on free ports (the test suite's stack), so it never
touches a running `make up` stack. The baseline is the cheapest way to run the same
command in the same image: `docker run --rm --network none IMAGE bash -c 'echo hello'`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cutor.image import sandbox_image_tag

from tests.conftest import Stack

HELLO = {"files": [{"name": "run.sh", "content": "echo hello"}]}
C_PROGRAM = {
    "files": [
        {"name": "run.sh", "content": "./hello"},
        {"name": "compile.sh", "content": "gcc -O2 -o hello hello.c"},
        {"name": "hello.c", "content": '#include <stdio.h>\nint main(void){puts("hi");}\n'},
    ]
}


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def bare_docker_run() -> None:
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", sandbox_image_tag(), "bash", "-c",
         "echo hello"],
        check=True, capture_output=True,
    )


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cutor-bench-") as state:
        stack = Stack(Path(state), "runc")
        try:
            stack.run(HELLO)  # warm-up: first container start, first imports
            baseline = timed(bare_docker_run, rounds)
            hello = timed(lambda: stack.run(HELLO), rounds)
            compiled = timed(lambda: stack.run(C_PROGRAM), rounds)
        finally:
            stack.stop()
    base = statistics.median(baseline)
    print(f"rounds: {rounds}")
    print(f"{'case':36} {'median s':>9} {'ratio':>7}")
    print(f"{'docker run --rm (baseline)':36} {base:9.3f} {1.0:7.2f}")
    for name, samples in (("cutor hello world, POST to FINISHED", hello),
                          ("cutor C compile + run", compiled)):
        median = statistics.median(samples)
        print(f"{name:36} {median:9.3f} {median / base:7.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
