"""The Docker options of a sandbox container, each one a defence; see docs/security.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from cutor.limits import MiB

SUPERVISOR = ["python3", "-I", "-S", "/opt/cutor/supervisor.py"]
# Bytes per inode allowed on the work and tmp tmpfs mounts, so that a flood of empty
# files hits the inode limit at a size proportional to the disk limit.
BYTES_PER_INODE = 4096
OPEN_FILES = 1024
# gVisor's ptrace platform runs the Sentry's threads and one host stub process per guest
# address space inside the container's pids cgroup, so under runsc the cgroup needs room
# beyond the guest's processes; the guest's own count is bounded by RLIMIT_NPROC, which
# gVisor keeps per sandbox. Under runc RLIMIT_NPROC would count the uid's processes on
# the whole host, so there the pids cgroup is the limit.
RUNSC_PIDS_OVERHEAD = 512


@dataclass
class ContainerSpec:
    """What a sandbox container is created with; limits are the phase maxima."""

    submission_id: str
    image: str
    runtime: str
    uid: int
    memory: int
    processes: int
    disk: int
    cpus: float
    worker_id: str
    mount_nix_store: str | None = None
    seccomp_profile: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


def _tmpfs(path: str, size: int, uid: int, mode: str) -> list[str]:
    inodes = max(1024, size // BYTES_PER_INODE)
    options = f"rw,exec,nosuid,nodev,size={size},nr_inodes={inodes},uid={uid},gid={uid},mode={mode}"
    return ["--tmpfs", f"{path}:{options}"]


def pids_limit(runtime: str, processes: int) -> int:
    # The supervisor itself is one of the container's processes.
    if runtime == "runsc":
        return processes + 1 + RUNSC_PIDS_OVERHEAD
    return processes + 1


def docker_run_arguments(spec: ContainerSpec, name: str) -> list[str]:
    arguments = [
        "docker", "run", "--interactive", "--name", name,
        "--label", "cutor.sandbox=1",
        "--label", f"cutor.submission={spec.submission_id}",
        "--label", f"cutor.worker={spec.worker_id}",
        "--runtime", spec.runtime,
        "--user", f"{spec.uid}:{spec.uid}",
        "--hostname", "sandbox",
        # No network interface but loopback: nothing inside can reach the host, the
        # storage, the API or the internet.
        "--network", "none",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--read-only",
        "--memory", str(spec.memory),
        # Equal to --memory: no swap, so the memory limit is a hard limit.
        "--memory-swap", str(spec.memory),
        "--pids-limit", str(pids_limit(spec.runtime, spec.processes)),
        "--cpus", str(spec.cpus),
        "--ulimit", f"nofile={OPEN_FILES}:{OPEN_FILES}",
        "--ulimit", "core=0:0",
        # Output reaches Cutor through the attached stdout; Docker keeps no log copy.
        "--log-driver", "none",
        *_tmpfs("/work", spec.disk, spec.uid, "0700"),
        *_tmpfs("/tmp", spec.disk, spec.uid, "1777"),
        *_tmpfs("/cutor", MiB, spec.uid, "0700"),
    ]
    if spec.seccomp_profile:
        arguments += ["--security-opt", f"seccomp={spec.seccomp_profile}"]
    if spec.mount_nix_store:
        arguments += ["--volume", f"{spec.mount_nix_store}:/nix/store:ro"]
    for key, value in spec.labels.items():
        arguments += ["--label", f"{key}={value}"]
    return [*arguments, spec.image, *SUPERVISOR]
