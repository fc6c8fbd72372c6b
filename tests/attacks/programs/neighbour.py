"""Act as one of two concurrent submissions, or as a later one; print what it saw as JSON.

Usage: neighbour.py ROLE OWN_TOKEN OTHER_TOKENS_JSON
  holder: leaves traces (files, shared memory, an abstract socket, a marked process),
          waits, and reports whether they survived;
  prober: looks for the traces of the other tokens and attacks what it finds;
  later:  runs after both and looks for any trace of them.
"""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

TRACE_FOLDERS = ["/work", "/tmp", "/dev/shm"]


def leave_traces(token: str) -> tuple[subprocess.Popen[bytes], socket.socket]:
    for folder in TRACE_FOLDERS:
        with open(os.path.join(folder, f"trace-{token}"), "w") as trace:
            trace.write(token)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(f"\0cutor-{token}")
    listener.listen(1)
    marked = subprocess.Popen(["sleep", f"30.{int(token[:6], 16)}"])
    return marked, listener


def traces_of(tokens: list[str]) -> list[str]:
    """Return every file, process or socket of the sandbox that mentions one of the tokens."""
    found = []
    for folder in TRACE_FOLDERS:
        for name in os.listdir(folder):
            if any(token in name for token in tokens):
                found.append(os.path.join(folder, name))
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                text = cmdline.read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(f"30.{int(token[:6], 16)}" in text for token in tokens):
            found.append(f"process {entry}: {text}")
    for token in tokens:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            try:
                client.connect(f"\0cutor-{token}")
                found.append(f"socket cutor-{token}")
            except OSError:
                pass
    return found


def signal_everything() -> dict[str, str]:
    """Send SIGKILL to every process this sandbox can name, except itself."""
    outcomes = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                os.kill(int(entry), signal.SIGKILL)
                outcomes[entry] = "killed"
            except OSError as error:
                outcomes[entry] = errno.errorcode.get(error.errno or 0, str(error))
    return outcomes


def main() -> None:
    role, token, others = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if role == "holder":
        marked, listener = leave_traces(token)
        placed = time.time()
        time.sleep(4)
        report = {"own traces": traces_of([token]), "marked alive": marked.poll() is None,
                  "held from": placed, "held until": time.time()}
        marked.kill()
        listener.close()
    elif role == "prober":
        time.sleep(1)
        started = time.time()
        seen = traces_of(others)
        report = {"seen": seen, "signals": signal_everything(), "seen after": traces_of(others),
                  "probed from": started, "probed until": time.time()}
    else:
        report = {"seen": traces_of(others)}
    print(json.dumps(report))


main()
