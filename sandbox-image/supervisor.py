"""Cutor's in-container supervisor: PID 1 of every sandbox container.

The container starts it as root with three capabilities (CAP_SETUID, CAP_SETGID,
CAP_KILL). Before it reads any command it switches to a uid of its own, keeping CAP_KILL
to stop the submission's processes and, in its permitted set only, CAP_SETUID and
CAP_SETGID to start them. Every process it starts switches to the sandbox uid and drops
all capabilities before it runs anything from the submission. Submission processes so
never share a uid with the supervisor, and the kernel's ordinary permission checks keep
them from signalling it, ptracing it, or opening its /proc/1/fd (whose stdout is the
frame channel to the host) and /proc/1/mem. gVisor (runsc release-20221219) lets a
process of the same uid do all of that to PID 1, even a non-dumpable one, so the
separate uid is what protects the supervisor there.

Usage: supervisor.py SANDBOX_UID SUPERVISOR_UID, both non-zero and different.

The host drives it over the container's stdin with one JSON command per line:
  {"op": "files", "root": "/work", "files": [{"name", "data" (base64), "mode"}]}
  {"op": "phase", "argv": [...], "env": {...}, "stdin": base64, "limits": {...}}
It replies on the container's stdout with frames: one kind byte, a 4-byte big-endian
length, then the payload. b"O" and b"E" carry the phase's stdout and stderr bytes as
produced; b"R" carries the JSON result of a command. Submission processes never hold the
container's stdout, so they cannot forge a frame. It exits when stdin reaches EOF, and
the kernel then kills whatever is left in the container.

Runs under the image's python3 (Debian 12: Python 3.11), standard library only.
"""

import base64
import ctypes
import errno
import fcntl
import json
import math
import os
import resource
import selectors
import signal
import struct
import sys
import time

PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
CAP_KILL = 5
CAP_SETGID = 6
CAP_SETUID = 7
LINUX_CAPABILITY_VERSION_3 = 0x20080522
READ_CHUNK = 65536
CPU_POLL_SECONDS = 0.05
# After the main process exits, output still queued in the pipes is collected for at
# most this long; a daemonised child that keeps a pipe open cannot hold the phase open.
DRAIN_SECONDS = 0.2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

out = sys.stdout.buffer
libc = ctypes.CDLL(None, use_errno=True)


class CapabilityHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapabilityData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def send_frame(kind, payload):
    out.write(kind + struct.pack(">I", len(payload)) + payload)
    out.flush()


def send_result(result):
    send_frame(b"R", json.dumps(result).encode())


def make_non_dumpable():
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def capability_mask(*capabilities):
    mask = 0
    for capability in capabilities:
        mask |= 1 << capability
    return mask


def set_capabilities(effective, permitted):
    """Set this thread's effective and permitted capabilities (all below 32); no inheritable."""
    header = CapabilityHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (CapabilityData * 2)(CapabilityData(effective, permitted, 0), CapabilityData(0, 0, 0))
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def become_supervisor_user(uid):
    """Switch from root to ``uid``, keeping only what the supervisor needs.

    PR_SET_KEEPCAPS keeps the permitted set across the switch from uid 0; the kernel
    clears the effective set, and capset then enables CAP_KILL alone.
    """
    if os.getuid() != 0:
        raise SystemExit(f"cutor supervisor: must start as root, not uid {os.getuid()}")
    if libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_KEEPCAPS, 1) failed")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    set_capabilities(
        effective=capability_mask(CAP_KILL),
        permitted=capability_mask(CAP_KILL, CAP_SETUID, CAP_SETGID),
    )


def become_sandbox_user(uid):
    """Switch a child to the sandbox ``uid`` and drop every capability, permitted ones too.

    The switch from one non-zero uid to another leaves the capability sets as they are,
    so the last capset is what empties them. execve then grants nothing, because the
    container runs with no-new-privileges and the image has no setuid or file-capability
    binaries.
    """
    switching = capability_mask(CAP_SETUID, CAP_SETGID)
    set_capabilities(effective=switching, permitted=switching)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    set_capabilities(effective=0, permitted=0)


def write_files(command, sandbox_uid):
    """Write the files in a child, as the user who owns the root folder.

    Files under a folder of the sandbox user (/work) belong to the submission; files
    under the supervisor's own folder (/cutor) stay read-only for it.
    """
    error_r, error_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(error_r)
        try:
            if os.stat(command.get("root", "/work")).st_uid != os.getuid():
                become_sandbox_user(sandbox_uid)
            write_files_here(command)
        except BaseException as error:  # noqa: BLE001 - the child must never return
            os.write(error_w, f"{type(error).__name__}: {error}".encode()[:4096])
            os._exit(1)
        os._exit(0)
    os.close(error_w)
    with os.fdopen(error_r, "rb") as errors:
        message = errors.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        send_result({"error": message or f"file writer ended with wait status {status}"})
    else:
        send_result({"ok": True})


def write_files_here(command):
    root = os.path.realpath(command.get("root", "/work"))
    for entry in command["files"]:
        name = entry["name"]
        parts = name.split("/")
        if name.startswith("/") or "\0" in name or ".." in parts or "" in parts:
            raise ValueError(f"invalid file name {name!r}")
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(path, flags, entry.get("mode", 0o644))
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64decode(entry["data"]))


def read_counter(path, key):
    """Return the integer after ``key`` in a cgroup flat-keyed file, or None if unreadable."""
    try:
        with open(path) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) == 2 and fields[0] == key:
                    return int(fields[1])
    except OSError:
        return None
    return None


def oom_kill_count():
    count = read_counter("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill")
    if count is None:
        count = read_counter("/sys/fs/cgroup/memory.events", "oom_kill")
    return count


def pids_max_count():
    count = read_counter("/sys/fs/cgroup/pids/pids.events", "max")
    if count is None:
        count = read_counter("/sys/fs/cgroup/pids.events", "max")
    return count


def signal_name(number):
    """Return a signal's name; real-time signals, which Python's enum lacks, as SIGRTMIN+n."""
    try:
        return signal.Signals(number).name
    except ValueError:
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return f"SIG{number}"


def live_usage():
    """Return the CPU seconds and the thread count of every live process but this one.

    Read from /proc/PID/stat: after the command name, utime and stime are the 12th and
    13th fields, cutime and cstime (children it already waited for) the 14th and 15th,
    and num_threads the 18th.
    """
    ticks = 0
    threads = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or entry == "1":
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        ticks += sum(int(value) for value in fields[11:15])
        threads += int(fields[17])
    return ticks / CLOCK_TICKS, threads


def disk_full(paths):
    for path in paths:
        try:
            usage = os.statvfs(path)
        except OSError:
            continue
        if usage.f_bavail == 0 or (usage.f_files and usage.f_favail == 0):
            return True
    return False


def set_child_limits(limits):
    cpu = max(1, math.ceil(limits["cpu_time"]))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits.get("nproc"):
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
    # An ignored signal stays ignored across execve; Python and the supervisor ignore
    # these, and programs expect the default.
    for number in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
        signal.signal(number, signal.SIG_DFL)


class Phase:
    def __init__(self, command, sandbox_uid):
        self.sandbox_uid = sandbox_uid
        self.limits = command["limits"]
        self.stdin_data = base64.b64decode(command.get("stdin", ""))
        self.stdin_offset = 0
        self.counts = {b"O": 0, b"E": 0}
        self.exceeded = None
        self.cpu_reaped = 0.0
        self.peak_rss = 0
        self.peak_threads = 0
        self.main_status = None
        self.selector = selectors.DefaultSelector()
        self.oom_before = oom_kill_count()
        self.pids_before = pids_max_count()

        stdin_r, self.stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        self.started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            self._exec_child(command, stdin_r, stdout_w, stderr_w)
        self.main_pid = pid
        for fd in (stdin_r, stdout_w, stderr_w):
            os.close(fd)
        for fd, kind in ((stdout_r, b"O"), (stderr_r, b"E")):
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, kind)
        os.set_blocking(self.stdin_w, False)
        if self.stdin_data:
            self.selector.register(self.stdin_w, selectors.EVENT_WRITE, b"I")
        else:
            os.close(self.stdin_w)

    def _exec_child(self, command, stdin_r, stdout_w, stderr_w):
        try:
            os.setsid()
            for target, fd in ((0, stdin_r), (1, stdout_w), (2, stderr_w)):
                os.dup2(fd, target)
            os.closerange(3, 65536)
            set_child_limits(self.limits)
            become_sandbox_user(self.sandbox_uid)
            os.chdir(command.get("cwd", "/work"))
            os.execve(command["argv"][0], command["argv"], command["env"])
        except BaseException as error:  # noqa: BLE001 - the child must never return
            os.write(2, f"cutor: cannot start {command['argv'][0]}: {error}\n".encode())
        os._exit(127)

    def run(self, wakeup_fd):
        self.selector.register(wakeup_fd, selectors.EVENT_READ, b"W")
        deadline = self.started + self.limits["wall_time"]
        next_cpu_check = self.started
        while self.main_status is None:
            now = time.monotonic()
            if now >= deadline:
                self.stop("wall_time")
                break
            if now >= next_cpu_check:
                cpu_seconds, threads = live_usage()
                self.peak_threads = max(self.peak_threads, threads)
                if self.cpu_reaped + cpu_seconds > self.limits["cpu_time"]:
                    self.stop("cpu_time")
                    break
                next_cpu_check = now + CPU_POLL_SECONDS
            timeout = min(deadline, next_cpu_check) - now
            for key, _ in self.selector.select(max(0.0, timeout)):
                self.handle(key, wakeup_fd)
            self.reap()
            if self.exceeded:
                break
        self.drain()
        return self.finish()

    def handle(self, key, wakeup_fd):
        kind = key.data
        if kind == b"W":
            try:
                while os.read(wakeup_fd, 4096):
                    pass
            except BlockingIOError:
                pass
        elif kind == b"I":
            self.write_stdin()
        else:
            self.forward(key.fd, kind)

    def write_stdin(self):
        try:
            written = os.write(self.stdin_w, self.stdin_data[self.stdin_offset:self.stdin_offset + READ_CHUNK])
            self.stdin_offset += written
        except BlockingIOError:
            return
        except BrokenPipeError:
            self.stdin_offset = len(self.stdin_data)
        if self.stdin_offset >= len(self.stdin_data):
            self.selector.unregister(self.stdin_w)
            os.close(self.stdin_w)

    def forward(self, fd, kind):
        """Read one chunk from a pipe and send it; return False at EOF or when it is empty."""
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return False
        if not data:
            self.selector.unregister(fd)
            os.close(fd)
            return False
        room = self.limits["output"] - self.counts[kind]
        if len(data) > room:
            data = data[:room]
            self.exceeded = self.exceeded or "output"
        if data:
            self.counts[kind] += len(data)
            send_frame(kind, data)
        return True

    def reap(self):
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.cpu_reaped += usage.ru_utime + usage.ru_stime
            self.peak_rss = max(self.peak_rss, usage.ru_maxrss * 1024)
            if pid == self.main_pid:
                self.main_status = status

    def stop(self, limit):
        self.exceeded = self.exceeded or limit
        kill_all()

    def drain(self):
        deadline = time.monotonic() + DRAIN_SECONDS
        pipes = [key for key in self.selector.get_map().values() if key.data in (b"O", b"E")]
        for key in pipes:
            while not self.exceeded and time.monotonic() < deadline and self.forward(key.fd, key.data):
                pass

    def finish(self):
        elapsed = time.monotonic() - self.started
        kill_all()
        self.reap_all()
        for key in list(self.selector.get_map().values()):
            if key.data != b"W":
                self.selector.unregister(key.fd)
                os.close(key.fd)
        result = {
            "time": round(elapsed, 4),
            "cpu_time": round(self.cpu_reaped, 4),
            "memory": self.peak_rss,
            "exit_code": None,
            "signal": None,
            "limit_exceeded": self.exceeded,
            "oom_kill": self.counter_grew(self.oom_before, oom_kill_count()),
            "pids_max": self.processes_exhausted(),
            "disk_full": disk_full(["/work", "/tmp"]),
        }
        status = self.main_status
        if status is not None and os.WIFEXITED(status):
            result["exit_code"] = os.WEXITSTATUS(status)
        elif status is not None and os.WIFSIGNALED(status):
            result["signal"] = signal_name(os.WTERMSIG(status))
        elif status is None:
            result["signal"] = "SIGKILL"
        # SIGXCPU counts as the CPU limit only when the CPU time shows it: a program can
        # also send SIGXCPU to itself. The kernel's RLIMIT_CPU check and rusage round
        # differently (0.9993 s was seen at a 1 s limit), hence the margin.
        used_up = self.cpu_reaped >= 0.9 * self.limits["cpu_time"]
        if result["signal"] == "SIGXCPU" and not self.exceeded and used_up:
            result["limit_exceeded"] = "cpu_time"
        # CPU used between the last poll and the end still counts against the limit.
        if not result["limit_exceeded"] and self.cpu_reaped > self.limits["cpu_time"]:
            result["limit_exceeded"] = "cpu_time"
        return result

    def processes_exhausted(self):
        """Return whether a fork may have failed for lack of processes, or None if unknown.

        Under runc the pids cgroup counts the forks it refused. Under runsc the limit is
        RLIMIT_NPROC (see set_child_limits), which counts no refusals, so reaching it at
        one of the polls counts as exceeding it.
        """
        nproc = self.limits.get("nproc")
        if nproc:
            return self.peak_threads >= nproc
        return self.counter_grew(self.pids_before, pids_max_count())

    @staticmethod
    def counter_grew(before, after):
        if before is None or after is None:
            return None
        return after > before

    def reap_all(self):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self.reap()
            if not any(entry.isdigit() and entry != "1" for entry in os.listdir("/proc")):
                return
            kill_all()
            time.sleep(0.005)


def kill_all():
    """SIGKILL every process the supervisor may signal; Linux spares PID 1 and the caller."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass


def parse_uids(arguments):
    if len(arguments) != 2 or not all(argument.isdigit() for argument in arguments):
        raise SystemExit("usage: supervisor.py SANDBOX_UID SUPERVISOR_UID")
    sandbox_uid, supervisor_uid = (int(argument) for argument in arguments)
    if 0 in (sandbox_uid, supervisor_uid) or sandbox_uid == supervisor_uid:
        raise SystemExit("cutor supervisor: the two uids must be non-zero and different")
    return sandbox_uid, supervisor_uid


def main():
    sandbox_uid, supervisor_uid = parse_uids(sys.argv[1:])
    become_supervisor_user(supervisor_uid)
    make_non_dumpable()
    wakeup_r, wakeup_w = os.pipe()
    for fd in (wakeup_r, wakeup_w):
        os.set_blocking(fd, False)
        fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
    # A full wakeup pipe only means a wakeup is already pending.
    signal.set_wakeup_fd(wakeup_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    # Writing to a pipe whose reader is gone must raise EPIPE here, not kill PID 1:
    # gVisor does not spare PID 1 from default actions the way Linux does.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    # Python's handler would turn SIGINT into KeyboardInterrupt and end the supervisor.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    for line in sys.stdin.buffer:
        command = json.loads(line)
        try:
            if command["op"] == "files":
                write_files(command, sandbox_uid)
            elif command["op"] == "phase":
                send_result(Phase(command, sandbox_uid).run(wakeup_r))
            else:
                send_result({"error": f"unknown op {command['op']!r}"})
        except OSError as error:
            if error.errno == errno.EPIPE:
                return
            send_result({"error": f"{type(error).__name__}: {error}"})
        except (ValueError, KeyError) as error:
            send_result({"error": f"{type(error).__name__}: {error}"})


if __name__ == "__main__":
    main()
