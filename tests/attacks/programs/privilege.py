"""Try to gain privileges or reach the supervisor (PID 1); print each outcome as JSON.

Each entry is "ok" when the attempt worked, otherwise the errno name it failed with.
System calls go through libc's syscall() with x86-64 numbers, so that Python's own
wrappers cannot hide a refusal.
"""

import ctypes
import errno
import json
import os
import signal
import socket
import subprocess

libc = ctypes.CDLL(None, use_errno=True)

# x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
SYSCALLS = {
    "ptrace": 101, "mount": 165, "init_module": 175, "delete_module": 176,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
    "unshare": 272, "perf_event_open": 298, "setns": 308, "finit_module": 313,
    "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "pidfd_open": 434, "pidfd_send_signal": 424,
    "process_vm_readv": 310,
    "open_tree": 428, "fsopen": 430, "chroot": 161, "reboot": 169, "swapon": 167,
}
PTRACE_ATTACH = 16
PTRACE_SEIZE = 0x4206
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000


class IoUringParams(ctypes.Structure):
    _fields_ = [("fields", ctypes.c_uint32 * 30)]


def syscall(name: str, *arguments: object) -> str:
    ctypes.set_errno(0)
    result = libc.syscall(SYSCALLS[name], *arguments)
    if result == -1:
        code = ctypes.get_errno()
        return errno.errorcode.get(code, str(code))
    return "ok"


def attempt(action) -> str:  # type: ignore[no-untyped-def]
    try:
        action()
    except OSError as error:
        return errno.errorcode.get(error.errno or 0, str(error))
    return "ok"


def capabilities() -> dict[str, str]:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {name: fields.get(name, "").strip() for name in
            ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")}


def kernel_calls() -> dict[str, str]:
    params = IoUringParams()
    buffer = ctypes.create_string_buffer(64)
    return {
        # A valid io_uring_setup would return a file descriptor; EFAULT or EINVAL
        # would mean the kernel looked at the arguments, that is, the call was allowed.
        "io_uring_setup": syscall("io_uring_setup", 8, ctypes.byref(params)),
        "io_uring_enter": syscall("io_uring_enter", 0, 1, 0, 0, None, 0),
        "io_uring_register": syscall("io_uring_register", 0, 0, None, 0),
        "mount tmpfs": syscall("mount", b"none", b"/work", b"tmpfs", 0, None),
        "unshare user": syscall("unshare", CLONE_NEWUSER),
        "unshare mount": syscall("unshare", CLONE_NEWNS),
        "unshare net": syscall("unshare", CLONE_NEWNET),
        "setns": syscall("setns", 0, 0),
        "init_module": syscall("init_module", buffer, 64, b""),
        "finit_module": syscall("finit_module", 0, b"", 0),
        "delete_module": syscall("delete_module", b"ext4", 0),
        "kexec_load": syscall("kexec_load", 0, 0, None, 0),
        "keyctl": syscall("keyctl", 0, 0, 0, 0, 0),
        "add_key": syscall("add_key", b"user", b"cutor", buffer, 8, -2),
        "request_key": syscall("request_key", b"user", b"cutor", None, 0),
        "userfaultfd": syscall("userfaultfd", 0),
        "perf_event_open": syscall("perf_event_open", buffer, 0, -1, -1, 0),
        "bpf": syscall("bpf", 0, buffer, 64),
        "open_tree": syscall("open_tree", -100, b"/", 0),
        "fsopen": syscall("fsopen", b"tmpfs", 0),
        "chroot": syscall("chroot", b"/work"),
        "reboot": syscall("reboot", 0xFEE1DEAD, 672274793, 0x4321FEDC, None),
        "swapon": syscall("swapon", b"/work/swap", 0),
    }


def raw_sockets() -> dict[str, str]:
    def open_socket(family: int, kind: int, protocol: int) -> None:
        socket.socket(family, kind, protocol).close()

    return {
        "raw icmp": attempt(lambda: open_socket(socket.AF_INET, socket.SOCK_RAW,
                                                socket.IPPROTO_ICMP)),
        "packet": attempt(lambda: open_socket(socket.AF_PACKET, socket.SOCK_RAW, 0)),
        "vsock": attempt(lambda: open_socket(40, socket.SOCK_STREAM, 0)),
    }


def pidfd_signal() -> str:
    """Send SIGKILL to PID 1 through a pidfd, which needs the same permission as kill."""
    ctypes.set_errno(0)
    descriptor = libc.syscall(SYSCALLS["pidfd_open"], 1, 0)
    if descriptor < 0:
        code = ctypes.get_errno()
        return errno.errorcode.get(code, str(code))
    try:
        return syscall("pidfd_send_signal", descriptor, signal.SIGKILL, None, 0)
    finally:
        os.close(descriptor)


def ptrace_own_child() -> str:
    """Attach to a child of this program, as a debugger would; this must work."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        outcome = syscall("ptrace", PTRACE_SEIZE, child.pid, None, None)
    finally:
        child.kill()
        child.wait()
    return outcome


def supervisor() -> dict[str, str]:
    """Try everything that would let the submission stop, read or impersonate PID 1."""
    iovec = (ctypes.c_uint64 * 2)(0, 16)
    report = {
        "ptrace attach": syscall("ptrace", PTRACE_ATTACH, 1, None, None),
        "ptrace seize": syscall("ptrace", PTRACE_SEIZE, 1, None, None),
        "process_vm_readv": syscall("process_vm_readv", 1, iovec, 1, iovec, 1, 0),
        "open mem": attempt(lambda: open("/proc/1/mem", "rb").close()),
        "list fd": attempt(lambda: os.listdir("/proc/1/fd")),
        "write stdout": attempt(lambda: open("/proc/1/fd/1", "wb").close()),
        "open root": attempt(lambda: os.listdir("/proc/1/root/")),
        "pidfd signal": pidfd_signal(),
    }
    for name in ("SIGKILL", "SIGTERM", "SIGSTOP", "SIGINT", "SIGHUP", "SIGPIPE", "SIGUSR1"):
        number = getattr(signal, name)
        report[f"kill {name}"] = attempt(lambda number=number: os.kill(1, number))
    return report


def setuid_copy() -> dict[str, str]:
    """Copy bash with the setuid bit set and report whose ids it runs with."""
    subprocess.run(["cp", "/bin/bash", "/work/rootbash"], check=True)
    os.chmod("/work/rootbash", 0o4755)
    ids = subprocess.run(["/work/rootbash", "-p", "-c", "id -u; id -ru"],
                         capture_output=True, text=True, check=False)
    found = subprocess.run(["find", "/", "-xdev", "-perm", "/6000", "-type", "f"],
                           capture_output=True, text=True, check=False)
    su = subprocess.run(["su", "-c", "id -u"], input="", text=True, capture_output=True,
                        check=False)
    return {
        "ids": ids.stdout.split(),
        "setuid files": found.stdout.split(),
        "su": "ok" if su.returncode == 0 else f"exit {su.returncode}",
    }


def main() -> None:
    with open("/proc/self/uid_map") as uid_map:
        mapping = uid_map.read().split()
    report = {
        "uid": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()],
        "uid map": mapping,
        "groups": os.getgroups(),
        "capabilities": capabilities(),
        "kernel": kernel_calls(),
        "sockets": raw_sockets(),
        "supervisor": supervisor(),
        "ptrace own child": ptrace_own_child(),
        "setuid": setuid_copy(),
    }
    print(json.dumps(report))


main()
