"""The Docker options of a sandbox container, each one a defence; see docs/security.md."""

from __future__ import annotations

import logging
import pwd
from dataclasses import dataclass, field

from cutor.errors import SandboxError
from cutor.limits import MiB

logger = logging.getLogger(__name__)

SUPERVISOR = ["python3", "-I", "-S", "/opt/cutor/supervisor.py"]
# The supervisor's own uid. Submission processes run as another uid (ContainerSpec.uid),
# so they cannot signal, ptrace or open the /proc files of the supervisor, whatever the
# runtime does for PID 1. Without user-namespace remapping a container uid is the same
# uid on the host, and every host process of that uid can signal the supervisor. Uid 999,
# for one, is nixbld1 on Debian, and nix-daemon kills all processes of a build user after
# each build. 60000 is the first uid of the block that isolate, a sandbox for judges,
# reserves for its boxes in its default.cf; no Debian account uses it, and it stays
# below 65536, so userns-remap and rootless Docker can map it. check_host_uids warns
# when a host account has it.
SUPERVISOR_UID = 60000
# Capabilities of the supervisor, which starts as root: CAP_SETUID and CAP_SETGID to
# switch itself and each submission process to their uids, and CAP_KILL to stop
# processes of the sandbox uid. Submission processes drop all three before they run
# anything.
SUPERVISOR_CAPABILITIES = ("SETUID", "SETGID", "KILL")
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
# NOTE: runsc release-20221219 rejects statx(2) calls that carry AT_NO_AUTOMOUNT, which
# coreutils 9.1 always passes, so `ls` and `stat` fail on every file under that runtime.
# The image's shim (sandbox-image/statx_shim.c) clears the flag. It is preloaded under
# runsc only, because AddressSanitizer does not start after a preloaded library unless
# its link-order check is off. The client's own variables override both. Remove this
# when runsc accepts the flag.
RUNSC_ENVIRONMENT = {
    "LD_PRELOAD": "/usr/local/lib/libcutor-statx.so",
    "ASAN_OPTIONS": "verify_asan_link_order=0",
}


@dataclass
class ContainerSpec:
    """The settings a sandbox container is created with; limits are the phase maxima."""

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


def runtime_environment(runtime: str) -> dict[str, str]:
    """Return the variables a phase needs under ``runtime`` to work around its bugs."""
    return dict(RUNSC_ENVIRONMENT) if runtime == "runsc" else {}


def pids_limit(runtime: str, processes: int) -> int:
    # The supervisor itself is one of the container's processes.
    if runtime == "runsc":
        return processes + 1 + RUNSC_PIDS_OVERHEAD
    return processes + 1


def check_host_uids(sandbox_uid: int) -> None:
    """Log a warning for each sandbox uid that belongs to an account of this host.

    Without user-namespace remapping, processes of that account share the uid with the
    sandbox: they can signal sandbox processes, and kernel limits counted per uid
    (processes, inotify instances, pipe buffers) are shared with them.
    """
    for role, uid in (("sandbox", sandbox_uid), ("supervisor", SUPERVISOR_UID)):
        try:
            account = pwd.getpwuid(uid).pw_name
        except KeyError:
            continue
        logger.warning(
            "the %s uid %d is the uid of host account %r; unless Docker remaps user "
            "namespaces, that account's processes can signal sandbox processes (set "
            "CUTOR_SANDBOX_UID to a uid no host account has)", role, uid, account,
        )


def supervisor_command(uid: int) -> list[str]:
    """Return the container's command: the supervisor with the sandbox and its own uid."""
    if uid in (0, SUPERVISOR_UID):
        raise SandboxError(
            f"sandbox uid {uid} is invalid: submission code must not run as root or as "
            f"the supervisor's uid {SUPERVISOR_UID}; set CUTOR_SANDBOX_UID to another uid"
        )
    return [*SUPERVISOR, str(uid), str(SUPERVISOR_UID)]


def docker_run_arguments(spec: ContainerSpec, name: str) -> list[str]:
    capabilities = [f"--cap-add={capability}" for capability in SUPERVISOR_CAPABILITIES]
    arguments = [
        "docker", "run", "--interactive", "--name", name,
        "--label", "cutor.sandbox=1",
        "--label", f"cutor.submission={spec.submission_id}",
        "--label", f"cutor.worker={spec.worker_id}",
        "--runtime", spec.runtime,
        # Only the supervisor's first instructions run as root; see SUPERVISOR_UID.
        "--user", "0:0",
        "--hostname", "sandbox",
        # No network interface but loopback: nothing inside can reach the host, the
        # storage, the API or the internet.
        "--network", "none",
        "--cap-drop", "ALL",
        *capabilities,
        # execve grants no privileges, so setuid binaries and file capabilities give
        # a submission nothing.
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
        # Cutor's own files (the Nix environment's env.sh, which every phase sources)
        # belong to the supervisor, so that compile.sh cannot change what run.sh
        # starts with.
        *_tmpfs("/cutor", MiB, SUPERVISOR_UID, "0755"),
    ]
    if spec.seccomp_profile:
        arguments += ["--security-opt", f"seccomp={spec.seccomp_profile}"]
    if spec.mount_nix_store:
        arguments += ["--volume", f"{spec.mount_nix_store}:/nix/store:ro"]
    for key, value in spec.labels.items():
        arguments += ["--label", f"{key}={value}"]
    return [*arguments, spec.image, *supervisor_command(spec.uid)]
