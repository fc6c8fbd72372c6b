"""Submissions end to end: API → MinIO → executor → sandbox → status, with real parts.

Each case is a real program with its expected outcome, in the way of a judge's test table.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import Stack

MiB = 1024 * 1024
FAST_RUN = {"run": {"wall_time": 3, "cpu_time": 2}}


@pytest.fixture
def stack(runtime_stack: Stack) -> Stack:
    """Run every test of this module under runc and under runsc (gVisor)."""
    return runtime_stack


@dataclass
class Case:
    name: str
    body: dict[str, Any]
    status: str
    phase: str = "run"
    exit_code: int | None = 0
    signal: str | None = None
    limit: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def submission(run_sh: str, extra: dict[str, str] | None = None, **options: Any) -> dict[str, Any]:
    """Build a request body: run.sh, the ``extra`` files by name, and request options."""
    named = {"run.sh": run_sh, **(extra or {})}
    body: dict[str, Any] = {"files": [{"name": k, "content": v} for k, v in named.items()]}
    body.update(options)
    return body


CASES = [
    Case("hello", submission("echo hello"), "FINISHED", stdout="hello\n"),
    Case("c with stdin",
         submission("./sum", {
             "compile.sh": "gcc -O2 -o sum main.c",
             "main.c": '#include <stdio.h>\nint main(void){long a,b;scanf("%ld %ld",&a,&b);'
                       'printf("%ld\\n",a+b);return 0;}\n',
         }, inputs="40 2\n"),
         "FINISHED", stdout="42\n"),
    Case("python args and env",
         submission("python3 -c 'import os, sys; print(os.environ[\"GREETING\"], *sys.argv[1:])'"
                    ' "$@"', args=["a b", "c"], env={"GREETING": "hi"}),
         "FINISHED", stdout="hi a b c\n"),
    Case("stderr separate", submission("echo out; echo err >&2; exit 3"), "FINISHED",
         exit_code=3, stdout="out\n", stderr="err\n"),
    Case("exit 137 is not a kill", submission("exit 137"), "FINISHED", exit_code=137),
    Case("self-sent SIGXCPU is not a limit", submission("kill -XCPU $$"), "FINISHED",
         exit_code=None, signal="SIGXCPU"),
    Case("compile leaves more than run's memory",
         submission("echo never", {"compile.sh": "head -c 150000000 /dev/zero > big"},
                    limits={"run": {"memory": 32 * MiB}, "compile": {"disk": 256 * MiB}}),
         "FINISHED", exit_code=None, limit="memory", extra={"runc_only": True}),
    Case("real-time signal", submission("echo hi; kill -40 $$"), "FINISHED",
         exit_code=None, signal="SIGRTMIN+6", stdout="hi\n"),
    Case("cpu of reaped children counts",
         submission("for i in 1 2 3 4 5 6; do timeout -s KILL 5 bash -c 'while :; do :; done'"
                    " || true; done",
                    limits={"run": {"cpu_time": 2, "wall_time": 30}}),
         "FINISHED", limit="cpu_time", extra={"any_exit": True}),
    Case("fork retries until wall time",
         submission("sleep 30 & sleep 30 & sleep 30; echo never",
                    limits={"run": {"processes": 2, "wall_time": 3}}),
         "FINISHED", limit="processes", extra={"any_exit": True}),
    Case("segfault", submission("./crash", {
             "compile.sh": "gcc -o crash crash.c",
             "crash.c": "int main(void){return *(volatile int*)0;}\n",
         }),
         "FINISHED", exit_code=None, signal="SIGSEGV"),
    Case("compile error", submission("./x", {"compile.sh": "gcc -o x x.c", "x.c": "int main( {\n"}),
         "COMPILE_FAILED", phase="compile", exit_code=1),
    Case("wall time on sleep", submission("sleep 30", limits=FAST_RUN), "FINISHED",
         exit_code=None, signal="SIGKILL", limit="wall_time"),
    Case("wall time on stopped program", submission("kill -STOP $$", limits=FAST_RUN),
         "FINISHED", exit_code=None, signal="SIGKILL", limit="wall_time"),
    # The wall limit leaves room for a loaded machine, where 1 s of CPU takes longer.
    Case("cpu time on busy loop", submission("while :; do :; done",
                                             limits={"run": {"cpu_time": 1, "wall_time": 20}}),
         "FINISHED", exit_code=None, limit="cpu_time"),
    Case("memory balloon",
         submission("python3 -c 'x = bytearray(512 * 1024 * 1024); print(len(x))'",
                    limits={"run": {"memory": 64 * MiB}}),
         "FINISHED", exit_code=None, signal="SIGKILL", limit="memory"),
    Case("endless output", submission("yes", limits={"run": {"output": 4096}}), "FINISHED",
         exit_code=None, signal="SIGKILL", limit="output", stdout="y\n" * 2048),
    Case("fork bomb", submission("f() { f | f & }; f; sleep 2", limits={"run": {"processes": 16}}),
         "FINISHED", limit="processes", extra={"any_exit": True}),
    Case("disk full", submission("head -c 64M /dev/zero > big", limits={"run": {"disk": 8 * MiB}}),
         "FINISHED", exit_code=1, limit="disk"),
    Case("daemonised child keeps pipe",
         submission("(sleep 60; echo late) & echo early", limits=FAST_RUN),
         "FINISHED", stdout="early\n"),
    Case("ignores stdin", submission("echo done", inputs="x" * (1024 * 1024)), "FINISHED",
         stdout="done\n"),
    Case("closes stdout", submission("exec >&-; sleep 0.2; echo gone >&2"), "FINISHED",
         stderr="gone\n"),
    Case("no stdin means eof", submission("cat; echo eof"), "FINISHED", stdout="eof\n"),
    Case("utf-8 locale",
         submission("python3 -c 'import locale; print(locale.getpreferredencoding())'"),
         "FINISHED", stdout="UTF-8\n"),
    Case("subfolders", submission("cat src/lib/data.txt", {"src/lib/data.txt": "nested\n"}),
         "FINISHED", stdout="nested\n"),
    Case("coreutils stat and ls",
         submission("echo x > f; stat -c %s f; ls -l f | cut -c1-10; cp -a f g; cat g"),
         "FINISHED", stdout="2\n-rw-r--r--\nx\n"),
    Case("threads and process pool",
         submission("python3 -c 'import multiprocessing as m, threading as t; r = []; "
                    "h = t.Thread(target=lambda: r.append(1)); h.start(); h.join(); "
                    "print(m.Pool(2).map(abs, [-1, -2]), r)'"),
         "FINISHED", stdout="[1, 2] [1]\n"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_submission_outcome(stack: Stack, case: Case) -> None:
    if case.extra.get("runc_only") and stack.settings.docker_runtime == "runsc":
        # NOTE: runsc rejects `docker update`, so under gVisor the run phase keeps the
        # compile phase's larger memory limit and this case cannot occur.
        pytest.skip("per-phase memory limits apply under runc only")
    result = stack.run(case.body)
    assert result["status"] == case.status, result
    phase = result[case.phase]
    if not case.extra.get("any_exit"):
        assert phase["exit_code"] == case.exit_code, phase
    if case.signal is not None:
        assert phase["signal"] == case.signal, phase
    assert phase["limit_exceeded"] == case.limit, phase
    if case.stdout is not None:
        assert phase["stdout"] == case.stdout
    if case.stderr is not None:
        assert phase["stderr"] == case.stderr
    assert isinstance(phase["time"], float | int)
    assert result["error"] is None


def test_statuses_move_through_phases(stack: Stack) -> None:
    body = submission("./a", {"compile.sh": "sleep 1; gcc -o a a.c",
                              "a.c": "int main(void){return 0;}\n"})
    submission_id = stack.submit(body)
    seen = []
    while not seen or seen[-1] not in ("FINISHED", "COMPILE_FAILED", "INTERNAL_ERROR"):
        status = stack.client.get(f"/submissions/{submission_id}").json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
    assert seen[-1] == "FINISHED"
    assert "DEPENDENCIES_INSTALLED" in seen
    assert seen.index("DEPENDENCIES_INSTALLED") < len(seen) - 1
    assert "PENDING" not in seen[1:]


def test_output_is_byte_exact(stack: Stack) -> None:
    payload = bytes(range(256)) * 300 + b"\xff\xfe no newline at end"
    body = {"files": [
        {"name": "run.sh", "content": "cat blob; cat blob >&2"},
        {"name": "blob", "content": base64.b64encode(payload).decode(), "encoding": "base64"},
    ], "limits": {"run": {"output": 1024 * 1024}}}
    raw = stack.run(body, raw=True)
    assert base64.b64decode(raw["run"]["stdout"]) == payload
    assert base64.b64decode(raw["run"]["stderr"]) == payload
    shown = stack.client.get(f"/submissions/{raw['id']}").json()
    assert shown["run"]["stdout"] == payload.decode("utf-8", errors="replace")


def test_address_sanitizer_reports_leak(stack: Stack) -> None:
    # LeakSanitizer stops the program's threads with ptrace, which the seccomp profile
    # allows for the submission's own processes.
    body = submission("./leak", {
        "compile.sh": "gcc -g -fsanitize=address -o leak leak.c",
        "leak.c": "#include <stdlib.h>\nint main(void){void *p = malloc(100); p = 0; return 0;}\n",
    })
    result = stack.run(body)
    assert result["status"] == "FINISHED", result
    assert result["run"]["exit_code"] == 1
    assert "LeakSanitizer: detected memory leaks" in result["run"]["stderr"]
    assert "leak.c:2" in result["run"]["stderr"]


def test_long_lines_are_not_split(stack: Stack) -> None:
    result = stack.run(submission("python3 -c 'print(\"x\" * 100000)'"))
    assert result["run"]["stdout"] == "x" * 100000 + "\n"


def test_stdin_fully_delivered(stack: Stack) -> None:
    data = "".join(f"{i}\n" for i in range(200000))
    result = stack.run(submission("wc -l; ", inputs=data))
    assert result["run"]["stdout"].strip() == "200000"


def test_no_container_left_behind(stack: Stack) -> None:
    stack.run(submission("sleep 100 & sleep 100 & echo started", limits=FAST_RUN))
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=cutor.worker={stack.settings.worker_name()}"],
        capture_output=True, text=True, check=True,
    )
    assert listed.stdout.split() == []


def test_phase_result_fields(stack: Stack) -> None:
    result = stack.run(submission("python3 -c 'x = bytearray(50 * 1024 * 1024)'"))
    run = result["run"]
    assert set(run) == {"stdout", "stderr", "time", "cpu_time", "memory", "exit_code",
                        "signal", "limit_exceeded"}
    assert run["memory"] >= 50 * MiB
    assert 0 < run["cpu_time"] < 10
    assert result["compile"] is None
    assert result["dependencies"] is not None
    assert result["created_at"] <= result["updated_at"]
