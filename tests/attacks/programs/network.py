"""Try every way out of the sandbox's network namespace; print the outcome of each as JSON.

Usage: network.py TARGETS_JSON, a list of [host, port] pairs to connect to over TCP.
Every attempt only tries to connect: with no interface but loopback, nothing leaves.
"""

import errno
import json
import socket
import sys

UNIX_SOCKETS = [
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/nix/var/nix/daemon-socket/socket",
]
NAMES = ["example.com", "deb.debian.org", "host.docker.internal", "metadata.google.internal"]


def outcome(error: OSError) -> str:
    code = error.errno
    if isinstance(error, socket.gaierror):
        return f"gaierror {error.args[0]}"
    return errno.errorcode.get(code, str(code)) if code else type(error).__name__


def connect_tcp(host: str, port: int) -> str:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as connection:
        connection.settimeout(3)
        try:
            connection.connect((host, port))
        except OSError as error:
            return outcome(error)
    return "connected"


def connect_unix(path: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        try:
            connection.connect(path)
        except OSError as error:
            return outcome(error)
    return "connected"


def resolve(name: str) -> str:
    try:
        addresses = socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)
    except OSError as error:
        return outcome(error)
    return "resolved " + " ".join(sorted({entry[4][0] for entry in addresses}))


def interfaces() -> list[str]:
    try:
        return sorted(name for _, name in socket.if_nameindex())
    except OSError as error:
        return [f"error {outcome(error)}"]


def routes() -> list[str]:
    """Return the IPv4 routes of /proc/net/route, or its error."""
    try:
        with open("/proc/net/route") as table:
            return [line.split()[1] for line in table.readlines()[1:] if line.strip()]
    except OSError as error:
        return [f"error {outcome(error)}"]


def main() -> None:
    targets = json.loads(sys.argv[1])
    report = {
        "tcp": {f"{host}:{port}": connect_tcp(host, port) for host, port in targets},
        "unix": {path: connect_unix(path) for path in UNIX_SOCKETS},
        "dns": {name: resolve(name) for name in NAMES},
        "interfaces": interfaces(),
        "routes": routes(),
    }
    print(json.dumps(report))


main()
