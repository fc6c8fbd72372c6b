"""Resource exhaustion: each hog is stopped by its own limit, and the host recovers.

The hogs run concurrently (the runner takes four at a time). After they are final, the
host's free memory, the free disk of Docker's root, the process count and the API's
latency must come back to the baseline within loose tolerances (see conftest). No
sandbox container may remain, and the next submission must run normally.
"""

from __future__ import annotations

from typing import Any

from tests.attacks.conftest import (
    MiB,
    assert_host_recovered,
    assert_runs_normally,
    measure_host,
    run_all,
    shell_body,
)
from tests.conftest import Stack

FILL_INODES = """python3 -c '
n = 0
while True:
    open(f"/work/f{n}", "w").close()
    n += 1
'"""

HOGS: dict[str, dict[str, Any]] = {
    "fork bomb": shell_body("f() { f | f & }; f; sleep 3", processes=16),
    "memory balloon": shell_body(
        "python3 -c 'x = bytearray(512 * 1024 * 1024); print(len(x))'", memory=64 * MiB),
    "disk fill": shell_body("head -c 64M /dev/zero > /work/big", disk=8 * MiB),
    "tmp fill": shell_body("cat /dev/zero > /tmp/big", disk=8 * MiB),
    "inode fill": shell_body(FILL_INODES, disk=MiB, memory=64 * MiB),
    "shared memory fill": shell_body("head -c 512M /dev/zero > /dev/shm/big", memory=64 * MiB),
    "endless output": shell_body("yes & yes >&2", output=64 * 1024),
}


def expected_limit(hog: str, runtime: str) -> set[str]:
    """Return the limits that may stop ``hog`` under ``runtime``."""
    if hog == "inode fill" and runtime == "runsc":
        # gVisor's tmpfs ignores nr_inodes, and its inodes live in the sandbox's memory.
        # So the memory limit stops the flood, or the CPU limit if it comes first.
        return {"memory", "cpu_time"}
    if hog == "shared memory fill":
        # /dev/shm pages count against the memory limit; Docker's 64 MiB /dev/shm may
        # fill up first, and then head(1) fails with ENOSPC and no limit is recorded.
        return {"memory", None}  # type: ignore[arg-type]
    return {
        "fork bomb": {"processes"},
        "memory balloon": {"memory"},
        "disk fill": {"disk"},
        "tmp fill": {"disk"},
        "inode fill": {"disk"},
        "endless output": {"output"},
    }[hog]


def test_hogs_stopped_by_own_limits(stack: Stack) -> None:
    warm_up = stack.run(shell_body("echo ready"))
    baseline = measure_host(stack, warm_up["id"])
    results = run_all(stack, list(HOGS.values()))

    for hog, result in zip(HOGS, results, strict=True):
        assert result["status"] == "FINISHED", (hog, result)
        limit = result["run"]["limit_exceeded"]
        assert limit in expected_limit(hog, stack.settings.docker_runtime), (hog, result["run"])
    # The first stream to reach the limit stops the phase, so the other may be shorter.
    output = results[list(HOGS).index("endless output")]["run"]
    assert len(output["stdout"]) <= 64 * 1024
    assert len(output["stderr"]) <= 64 * 1024
    assert max(len(output["stdout"]), len(output["stderr"])) == 64 * 1024
    assert_host_recovered(stack, baseline, warm_up["id"])
    assert_runs_normally(stack)


PRINTERS = 20


def test_concurrent_printers_stopped(stack: Stack) -> None:
    warm_up = stack.run(shell_body("echo ready"))
    baseline = measure_host(stack, warm_up["id"])
    printer = shell_body("yes printer & yes printer >&2")
    results = run_all(stack, [printer] * PRINTERS)

    for index, result in enumerate(results):
        assert result["status"] == "FINISHED", (index, result)
        assert result["run"]["limit_exceeded"] == "output", (index, result["run"])
    assert_host_recovered(stack, baseline, warm_up["id"])
    assert_runs_normally(stack)
