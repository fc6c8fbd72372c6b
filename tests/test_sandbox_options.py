"""The seccomp profile and the Docker options of sandbox containers, checked as data.

tests/attacks runs hostile programs against these options; this file checks the parts
that programs cannot see, such as what the profile file contains.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cutor.errors import SandboxError
from cutor.sandbox import seccomp
from cutor.sandbox.options import (
    SUPERVISOR_UID,
    ContainerSpec,
    docker_run_arguments,
    supervisor_command,
)
from cutor.settings import Settings

MiB = 1024 * 1024
# Blocked by Docker's default profile for a container without capabilities, and so
# absent from Cutor's profile too.
DOCKER_BLOCKED = ("keyctl", "add_key", "request_key", "userfaultfd", "perf_event_open",
                  "bpf", "unshare", "setns", "mount", "umount2", "init_module",
                  "finit_module", "kexec_load", "open_by_handle_at", "kcmp", "pidfd_getfd")


def allowed_names(profile: dict[str, object]) -> set[str]:
    rules = profile["syscalls"]
    assert isinstance(rules, list)
    return {name for rule in rules if rule["action"] == "SCMP_ACT_ALLOW" and "args" not in rule
            for name in rule["names"]}


@pytest.mark.parametrize("runtime", ["runc", "runsc"])
def test_profile_refuses_io_uring(runtime: str) -> None:
    profile = seccomp.build_profile(runtime, "x86_64")
    named = {name for rule in profile["syscalls"] for name in rule["names"]}

    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    for name in seccomp.REMOVED:
        assert name not in named, name
    for name in DOCKER_BLOCKED:
        assert name not in named, name


def test_profile_allows_common_calls() -> None:
    allowed = allowed_names(seccomp.build_profile("runc", "x86_64"))

    for name in ("read", "write", "openat", "execve", "fork", "wait4", "mmap", "futex",
                 "statx", "newfstatat", "pipe2", "socketpair", "rt_sigaction", "ptrace"):
        assert name in allowed, name


def test_profile_lists_native_architecture_only() -> None:
    assert seccomp.build_profile("runc", "x86_64")["architectures"] == ["SCMP_ARCH_X86_64"]
    assert seccomp.build_profile("runc", "aarch64")["architectures"] == ["SCMP_ARCH_AARCH64"]
    with pytest.raises(ValueError, match="riscv64"):
        seccomp.build_profile("runc", "riscv64")


def test_clone_refuses_namespaces() -> None:
    rules = seccomp.build_profile("runc", "x86_64")["syscalls"]
    clone = [rule for rule in rules if rule["names"] == ["clone"]]

    assert clone == [{
        "names": ["clone"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "op": "SCMP_CMP_MASKED_EQ",
                  "value": seccomp.CLONE_NAMESPACES, "valueTwo": 0}],
    }]
    assert seccomp.CLONE_NAMESPACES & seccomp.CLONE_NEWUSER


def test_clone3_per_runtime() -> None:
    def clone3(runtime: str) -> list[dict[str, object]]:
        rules = seccomp.build_profile(runtime, "x86_64")["syscalls"]
        return [rule for rule in rules if rule["names"] == ["clone3"]]

    # runc returns ENOSYS so that glibc falls back to clone, whose flags seccomp checks.
    assert clone3("runc") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO",
                               "errnoRet": 38}]
    # runsc ignores errnoRet, and its own kernel returns ENOSYS.
    assert clone3("runsc") == [{"names": ["clone3"], "action": "SCMP_ACT_ALLOW"}]


def test_write_profile_is_idempotent(tmp_path: Path) -> None:
    path = seccomp.write_profile(tmp_path, "runc")
    written = path.stat().st_mtime_ns

    assert seccomp.write_profile(tmp_path, "runc") == path
    assert path.stat().st_mtime_ns == written
    assert json.loads(path.read_text()) == seccomp.build_profile("runc")
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]


def test_write_profile_restores_deleted_file(tmp_path: Path) -> None:
    path = seccomp.write_profile(tmp_path, "runsc")
    path.unlink()

    assert seccomp.write_profile(tmp_path, "runsc") == path
    assert json.loads(path.read_text()) == seccomp.build_profile("runsc")


def test_settings_return_profile_path(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, docker_runtime="runsc")
    path = Path(settings.seccomp_profile_path())

    assert path.parent == tmp_path / seccomp.PROFILE_FOLDER
    assert json.loads(path.read_text()) == seccomp.build_profile("runsc")


def spec(**changes: object) -> ContainerSpec:
    values: dict[str, object] = {
        "submission_id": "0" * 32, "image": "cutor-sandbox:test", "runtime": "runc",
        "uid": 1000, "memory": 256 * MiB, "processes": 64, "disk": 64 * MiB, "cpus": 1.0,
        "worker_id": "worker", "seccomp_profile": "/state/seccomp/sandbox-runc.json",
    }
    values.update(changes)
    return ContainerSpec(**values)  # type: ignore[arg-type]


def option_values(arguments: list[str], option: str) -> list[str]:
    return [arguments[index + 1] for index, value in enumerate(arguments) if value == option]


def test_container_options_defend_host() -> None:
    arguments = docker_run_arguments(spec(), "cutor-test")

    assert option_values(arguments, "--network") == ["none"]
    assert option_values(arguments, "--cap-drop") == ["ALL"]
    assert sorted(value for value in arguments if value.startswith("--cap-add=")) == [
        "--cap-add=KILL", "--cap-add=SETGID", "--cap-add=SETUID"]
    assert option_values(arguments, "--security-opt") == [
        "no-new-privileges", "seccomp=/state/seccomp/sandbox-runc.json"]
    assert "--read-only" in arguments
    assert "--privileged" not in arguments
    assert option_values(arguments, "--user") == ["0:0"]
    assert arguments[-2:] == ["1000", str(SUPERVISOR_UID)]


def test_tmpfs_mounts_have_limits() -> None:
    mounts = dict(value.split(":", 1) for value in
                  option_values(docker_run_arguments(spec(), "cutor-test"), "--tmpfs"))

    for path in ("/work", "/tmp"):
        assert "nosuid" in mounts[path], mounts[path]
        assert "nodev" in mounts[path], mounts[path]
        assert f"size={64 * MiB}" in mounts[path]
        assert "nr_inodes=" in mounts[path]
        assert "uid=1000" in mounts[path]
    assert f"uid={SUPERVISOR_UID}" in mounts["/cutor"]
    assert "mode=0755" in mounts["/cutor"]


@pytest.mark.parametrize("uid", [0, SUPERVISOR_UID])
def test_sandbox_uid_must_differ(uid: int) -> None:
    with pytest.raises(SandboxError, match="CUTOR_SANDBOX_UID"):
        supervisor_command(uid)
