"""Cutor's in-container supervisor: PID 1 of every sandbox container.

It runs as the same unprivileged user as the submission, with no capabilities, and stays
out of the submission's reach because of two kernel rules: signals from inside a PID
namespace reach its PID 1 only through handlers it installed (it installs none for
SIGKILL or SIGTERM), and a non-dumpable process cannot be ptraced, nor its /proc/1/fd or
/proc/1/mem opened, by a process without CAP_SYS_PTRACE.

The host drives it over the container's stdin with one JSON command per line:
  {"op": "files", "root": "/work", "files": [{"name", "data" (base64), "mode"}]}
  {"op": "phase", "argv": [...], "env": {...}, "stdin": base64, "limits": {...}}
It answers on the container's stdout with frames: one kind byte, a 4-byte big-endian
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
READ_CHUNK = 65536
CPU_POLL_SECONDS = 0.05
# After the main process exits, output still queued in the pipes is collected for at
# most this long; a daemonised child that keeps a pipe open cannot hold the phase open.
DRAIN_SECONDS = 0.2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

out = sys.stdout.buffer


def send_frame(kind, payload):
    out.write(kind + struct.pack(">I", len(payload)) + payload)
    out.flush()


def send_result(result):
    send_frame(b"R", json.dumps(result).encode())


def make_non_dumpable():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def write_files(command):
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
    send_result({"ok": True})


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


def live_cpu_seconds():
    """Return the CPU time of every live process but this one, from /proc/PID/stat."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or entry == "1":
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


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
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


class Phase:
    def __init__(self, command):
        self.limits = command["limits"]
        self.stdin_data = base64.b64decode(command.get("stdin", ""))
        self.stdin_offset = 0
        self.counts = {b"O": 0, b"E": 0}
        self.exceeded = None
        self.cpu_reaped = 0.0
        self.peak_rss = 0
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
                if self.cpu_reaped + live_cpu_seconds() > self.limits["cpu_time"]:
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
            "pids_max": self.counter_grew(self.pids_before, pids_max_count()),
            "disk_full": disk_full(["/work", "/tmp"]),
        }
        status = self.main_status
        if status is not None and os.WIFEXITED(status):
            result["exit_code"] = os.WEXITSTATUS(status)
        elif status is not None and os.WIFSIGNALED(status):
            result["signal"] = signal.Signals(os.WTERMSIG(status)).name
        elif status is None:
            result["signal"] = "SIGKILL"
        if result["signal"] == "SIGXCPU" and not self.exceeded:
            result["limit_exceeded"] = "cpu_time"
        return result

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


def main():
    make_non_dumpable()
    wakeup_r, wakeup_w = os.pipe()
    for fd in (wakeup_r, wakeup_w):
        os.set_blocking(fd, False)
        fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
    signal.set_wakeup_fd(wakeup_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    for line in sys.stdin.buffer:
        command = json.loads(line)
        try:
            if command["op"] == "files":
                write_files(command)
            elif command["op"] == "phase":
                send_result(Phase(command).run(wakeup_r))
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
