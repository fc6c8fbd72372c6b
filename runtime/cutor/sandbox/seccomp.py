"""The seccomp profile of sandbox containers: Docker's default, minus what code runners skip.

Docker compiles its default profile into dockerd, and a container started with
``--security-opt seccomp=FILE`` gets only FILE, so this module rebuilds the default as
data. The allowlist below is the set of system calls that Docker's default profile
(moby's profiles/seccomp/default.json, 2023 and later) allows to a container that has
no capabilities, as sandbox containers do (``--cap-drop ALL``). Calls that Docker allows
only with a capability (mount, unshare, setns, bpf, perf_event_open, ptrace of other
users' processes, module loading, ...) are absent, so they fail with EPERM as under
Docker's default. Further removals are in ``REMOVED`` with the reason for each.

The profile is written to the state folder and passed to ``docker run``; the Docker CLI
reads the file, so the path is on the machine that runs Cutor, not on the Docker host.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PROFILE_FOLDER = "seccomp"

# Allowed to every container by Docker's default profile, grouped by purpose. Names
# that do not exist on the host's architecture are ignored by runc and runsc.
FILES = (
    "access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd",
    "open", "openat", "openat2", "creat", "close", "close_range",
    "read", "readv", "pread64", "preadv", "preadv2",
    "write", "writev", "pwrite64", "pwritev", "pwritev2",
    "lseek", "_llseek", "dup", "dup2", "dup3", "fcntl", "fcntl64", "flock", "ioctl",
    "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat",
    "statx", "statfs", "statfs64", "fstatfs", "fstatfs64",
    "getdents", "getdents64", "mkdir", "mkdirat", "rmdir", "mknod", "mknodat",
    "link", "linkat", "symlink", "symlinkat", "readlink", "readlinkat",
    "unlink", "unlinkat", "rename", "renameat", "renameat2",
    "chmod", "fchmod", "fchmodat", "chown", "chown32", "fchown", "fchown32", "fchownat",
    "lchown", "lchown32", "umask",
    "truncate", "truncate64", "ftruncate", "ftruncate64", "fallocate",
    "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
    "fadvise64", "fadvise64_64", "readahead",
    "utime", "utimes", "utimensat", "utimensat_time64", "futimesat",
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr",
    "listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    "copy_file_range", "sendfile", "sendfile64", "splice", "tee", "vmsplice",
    "name_to_handle_at", "inotify_init", "inotify_init1", "inotify_add_watch",
    "inotify_rm_watch", "fanotify_mark",
    "pipe", "pipe2", "memfd_create", "memfd_secret", "eventfd", "eventfd2",
    "signalfd", "signalfd4", "timerfd_create", "timerfd_settime", "timerfd_settime64",
    "timerfd_gettime", "timerfd_gettime64",
)
POLLING = (
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait",
    "epoll_wait_old", "epoll_pwait", "epoll_pwait2",
)
# Linux AIO (io_setup and friends) stays: it predates io_uring, is far smaller, and
# libaio users such as databases' test suites need it.
ASYNC_IO = ("io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents",
            "io_pgetevents", "io_pgetevents_time64")
MEMORY = (
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
    "mlock", "mlock2", "mlockall", "munlock", "munlockall", "remap_file_pages",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "membarrier", "process_mrelease",
)
PROCESSES = (
    "execve", "execveat", "fork", "vfork", "exit", "exit_group",
    "wait4", "waitid", "waitpid", "kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal",
    "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
    "set_tid_address", "set_robust_list", "get_robust_list", "rseq",
    "prctl", "arch_prctl", "modify_ldt", "get_thread_area", "set_thread_area",
    "capget", "capset", "seccomp",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    "getrlimit", "ugetrlimit", "setrlimit", "prlimit64", "getrusage", "times",
    "getpriority", "setpriority", "ioprio_get", "ioprio_set",
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr",
    "sched_setattr", "sched_getparam", "sched_setparam", "sched_getscheduler",
    "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "getcpu",
    "restart_syscall",
    # Debuggers, strace and LeakSanitizer (part of gcc's -fsanitize=address) use these.
    # Only the submission's own processes are reachable: the supervisor runs as another
    # uid, and the kernel (4.8 and later) checks ptrace access on each of these calls.
    "ptrace", "process_vm_readv", "process_vm_writev",
)
# Changing to an id the process does not already have needs CAP_SETUID or CAP_SETGID,
# which sandbox processes lack. Programs such as su call these and expect EPERM.
IDENTITY = (
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid",
    "getegid32", "getresuid", "getresuid32", "getresgid", "getresgid32",
    "getgroups", "getgroups32", "setuid", "setuid32", "setgid", "setgid32",
    "setreuid", "setreuid32", "setregid", "setregid32", "setresuid", "setresuid32",
    "setresgid", "setresgid32", "setfsuid", "setfsuid32", "setfsgid", "setfsgid32",
    "setgroups", "setgroups32",
)
SIGNALS = (
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "sigaltstack", "sigprocmask", "sigreturn", "pause", "alarm",
    "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
)
TIME = (
    "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres",
    "clock_getres_time64", "clock_nanosleep", "clock_nanosleep_time64", "nanosleep",
    # Without CAP_SYS_TIME these only read the clock's tuning.
    "adjtimex", "clock_adjtime", "clock_adjtime64",
)
SYNCHRONISATION = ("futex", "futex_time64", "futex_waitv")
# The container has only a loopback interface (--network none), so sockets reach
# nothing outside it; socket() itself is in ``CONDITIONAL_RULES``.
SOCKETS = (
    "socketpair", "socketcall", "bind", "listen", "accept", "accept4", "connect",
    "getsockname", "getpeername", "getsockopt", "setsockopt", "shutdown",
    "send", "sendto", "sendmsg", "sendmmsg", "recv", "recvfrom", "recvmsg", "recvmmsg",
    "recvmmsg_time64",
)
# System V and POSIX IPC act inside the container's own IPC namespace.
IPC = (
    "ipc", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "semctl", "shmget", "shmat", "shmdt", "shmctl",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
)
SYSTEM = ("uname", "sysinfo", "getrandom")

# Allowed by Docker's default profile but left out of the lists above. Each entry is a
# syscall and the reason: what a submission could do with it that no ordinary program
# needs.
REMOVED = {
    # Operations submitted through an io_uring ring are not system calls, so seccomp
    # cannot filter them one by one. io_uring has also been the source of many local
    # privilege escalations. In June 2023 Google reported that 60% of the kernel
    # exploits sent to its bug bounty used it, and it disabled io_uring in ChromeOS, for
    # Android apps and on its production servers (as reported by Golem.de).
    "io_uring_setup": "io_uring",
    "io_uring_enter": "io_uring",
    "io_uring_register": "io_uring",
}

ALLOWED = frozenset(
    FILES + POLLING + ASYNC_IO + MEMORY + PROCESSES + IDENTITY + SIGNALS + TIME
    + SYNCHRONISATION + SOCKETS + IPC + SYSTEM
)

# Namespace flags of clone(2). Without CAP_SYS_ADMIN the kernel rejects every new
# namespace but a user namespace, and that one leads to all the others. A process that
# is root in its own user namespace can mount file systems and use netfilter and other
# kernel code that is otherwise out of reach.
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NAMESPACES = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC
                    | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)
# AF_VSOCK talks to the hypervisor of a virtual machine host, outside any network namespace.
AF_VSOCK = 40
# personality(2) values Docker allows: PER_LINUX, UNAME26, ADDR_NO_RANDOMIZE (which
# debuggers set), both together, and 0xffffffff, which only reads the current value.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

SECCOMP_ARCHITECTURES = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


def _rule(names: list[str], action: str = "SCMP_ACT_ALLOW", **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": action, **extra}


def _argument(index: int, op: str, value: int, value_two: int = 0) -> dict[str, Any]:
    return {"index": index, "op": op, "value": value, "valueTwo": value_two}


def conditional_rules(runtime: str) -> list[dict[str, Any]]:
    """Return the rules that allow a syscall only for some argument values."""
    rules = [
        _rule(["clone"], args=[_argument(0, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACES, 0)]),
        _rule(["socket"], args=[_argument(0, "SCMP_CMP_NE", AF_VSOCK)]),
    ]
    if runtime == "runsc":
        # runsc release-20221219 applies the profile inside its own kernel (runtime flag
        # --oci-seccomp) but ignores errnoRet, so the rule below would return EPERM, and
        # glibc then fails to start threads instead of falling back to clone. Its kernel
        # does not implement clone3 and returns ENOSYS itself.
        rules.append(_rule(["clone3"]))
    else:
        # glibc 2.34 and later try clone3 first and fall back to clone on ENOSYS. clone3
        # passes its flags in memory, where seccomp cannot check them for namespaces.
        rules.append(_rule(["clone3"], "SCMP_ACT_ERRNO", errnoRet=errno.ENOSYS))
    rules += [
        _rule(["personality"], args=[_argument(0, "SCMP_CMP_EQ", value)])
        for value in PERSONALITIES
    ]
    return rules


def build_profile(runtime: str, machine: str | None = None) -> dict[str, Any]:
    """Return the seccomp profile for containers of ``runtime``, as Docker reads it.

    Only the host's native architecture is listed: a 32-bit system call (int 0x80 on
    x86-64) matches no architecture and is refused, so the compat entry points of the
    kernel are out of reach. Raise ValueError on an architecture without a mapping.
    """
    machine = machine or platform.machine()
    try:
        architecture = SECCOMP_ARCHITECTURES[machine]
    except KeyError:
        raise ValueError(
            f"no seccomp architecture for machine {machine!r}; supported: "
            f"{', '.join(sorted(SECCOMP_ARCHITECTURES))}"
        ) from None
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": [architecture],
        "syscalls": [_rule(sorted(ALLOWED)), *conditional_rules(runtime)],
    }


def write_profile(state_dir: Path, runtime: str) -> Path:
    """Write the profile for ``runtime`` under ``state_dir`` if it differs; return its path.

    The file is replaced by a rename, so a container that starts meanwhile reads either
    the old or the new profile, never a partial one.
    """
    folder = state_dir / PROFILE_FOLDER
    path = folder / f"sandbox-{runtime}.json"
    text = json.dumps(build_profile(runtime), indent=1, sort_keys=True) + "\n"
    try:
        if path.read_text() == text:
            return path
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".sandbox-", dir=folder)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    logger.info("wrote the seccomp profile of %s sandboxes to %s", runtime, path)
    return path
