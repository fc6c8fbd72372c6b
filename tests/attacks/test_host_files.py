"""Host files: nothing of the host is readable, and only the sandbox's own tmpfs is writable.

The secrets are world-readable files that the test plants in the host's /tmp, /root and
/etc, so only the container's mount namespace, not file permissions, hides them.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.attacks.conftest import Planted, probe_body, probe_report
from tests.conftest import Stack

# Writable folders a submission may have: its two tmpfs mounts and, from Docker, the
# container's private /dev/shm and /dev/mqueue (POSIX shared memory and message queues
# of its own IPC namespace, charged to its memory limit). Everything else is read-only.
WRITABLE_ROOTS = ("/work", "/tmp", "/dev/shm", "/dev/mqueue")


def test_host_files_stay_hidden(
    stack: Stack, planted: Planted, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runner starts the docker CLI from this process; its environment must not
    # reach the sandbox either.
    monkeypatch.setenv("CUTOR_ATTACK_SECRET", planted.secret)
    _, minio_secret = json.loads(stack.minio.credentials_path.read_text()).values()
    paths = [
        *(str(path) for path in planted.paths),
        str(stack.minio.credentials_path),
        str(stack.settings.state_dir),
        "/var/run/docker.sock",
        "/etc/shadow",
        "/proc/1/root/etc/shadow",
        f"/proc/1/root{planted.paths[0]}",
        "/nix/var/nix/daemon-socket/socket",
    ]
    pid_1 = ["/proc/1/cmdline", "/proc/1/environ"]
    result = stack.run(probe_body("host_files.py", json.dumps(paths + pid_1)))
    report = probe_report(result)

    for path in paths:
        assert not report["reads"][path].startswith("read "), f"{path} was readable"
    # PID 1 in the sandbox is the supervisor, not the host's init. runsc shows its
    # environment (the container's own variables) to other uids; runc does not.
    assert "/opt/cutor/supervisor.py" in report["reads"]["/proc/1/cmdline"]
    environ = report["reads"]["/proc/1/environ"]
    assert environ == "EACCES" or "HOSTNAME=sandbox" in environ, environ
    everything = json.dumps(result)
    assert planted.secret not in everything
    assert minio_secret not in everything
    assert "CUTOR_ATTACK_SECRET" not in report["environment"]


def test_only_own_tmpfs_writable(stack: Stack) -> None:
    report = probe_report(stack.run(probe_body("host_files.py", "[]")))

    for folder in report["writable"]:
        assert folder.startswith(WRITABLE_ROOTS), f"{folder} is writable"
    assert "/work" in report["writable"]
    assert "/tmp" in report["writable"]
    # /cutor contains the Nix environment's env.sh and belongs to the supervisor.
    assert "/cutor" not in report["writable"]
    for path, attempt in report["overwrites"].items():
        assert attempt != "opened for writing", f"{path} could be overwritten"


def test_nix_store_is_read_only(stack: Stack) -> None:
    nonce = secrets.token_hex(6)
    cutor_nix = f"""[ (derivation {{
      name = "store-target-{nonce}"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "mkdir -p $out/bin; echo original > $out/data" ];
    }}) ]"""
    run_sh = f"""
for target in /nix/store/*-store-target-{nonce}; do :; done
for attempt in "touch /nix/store/new-{nonce}" "cp /bin/sh $target/bin/sh" \\
    "rm $target/data" "chmod 777 $target" "mkdir /nix/store/dir-{nonce}"; do
  if $attempt 2>/dev/null; then echo "succeeded: $attempt"; fi
done
echo changed >> $target/data 2>/dev/null && echo "succeeded: append"
cat $target/data
"""
    body = {"files": [{"name": "run.sh", "content": run_sh},
                      {"name": "cutor.nix", "content": cutor_nix}]}
    result = stack.run(body)

    assert result["status"] == "FINISHED", result
    assert result["run"]["stdout"] == "original\n"
    store_path = next(Path("/nix/store").glob(f"*-store-target-{nonce}"))
    assert (store_path / "data").read_text() == "original\n"
    assert not Path(f"/nix/store/new-{nonce}").exists()
