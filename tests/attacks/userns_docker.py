"""A second Docker daemon with user-namespace remapping, for the attack suite.

It has its own data root, exec root, socket, configuration and bridge interface, and no
iptables rules, so it leaves the machine's main dockerd alone. It must not run with
"bridge": "none": a dockerd started that way deletes the host's docker0 interface, which
belongs to the main dockerd. With "userns-remap": "default", dockerd creates the user
dockremap and its subordinate ids, and container uid 0 becomes host uid 100000 (the first
id of that range). Cutor reaches the daemon through DOCKER_HOST, which the Docker CLI
honours.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path

logger = logging.getLogger(__name__)

DATA = Path("/var/lib/cutor-userns-docker")
RUN = Path("/var/run/cutor-userns-docker")
SOCKET = RUN / "docker.sock"
DOCKER_HOST = f"unix://{SOCKET}"
START_TIMEOUT = 60.0
# The daemon's own bridge. Sandboxes never attach to it (they run with --network none);
# it only keeps the daemon away from docker0. Its address is from TEST-NET-2 (RFC 5737),
# which is reserved for documentation, so no real network on the host can overlap it.
BRIDGE = "cutor-uns0"
BRIDGE_ADDRESS = "198.51.100.1/30"
CONFIG = {
    "userns-remap": "default",
    "bridge": BRIDGE,
    "iptables": False,
    "ip6tables": False,
    "ip-masq": False,
    "cgroup-parent": "/cutor-userns",
    "runtimes": {"runsc": {"path": "/usr/bin/runsc",
                           "runtimeArgs": ["--network=none", "--oci-seccomp"]}},
}


def docker(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the Docker CLI against the remapping daemon."""
    environment = {**os.environ, "DOCKER_HOST": DOCKER_HOST}
    return subprocess.run(["docker", *arguments], capture_output=True, text=True,
                          check=check, env=environment)


def answers() -> bool:
    return SOCKET.exists() and docker("info", check=False).returncode == 0


class UsernsDocker:
    """A remapping daemon: started unless one already runs on SOCKET, stopped if started here."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.created_bridge = False

    def start(self) -> None:
        if answers():
            return
        self._create_bridge()
        DATA.mkdir(parents=True, exist_ok=True)
        RUN.mkdir(parents=True, exist_ok=True)
        config = DATA / "daemon.json"
        config.write_text(json.dumps(CONFIG, indent=2))
        log = DATA / "dockerd.log"
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                ["dockerd", "--config-file", str(config), "--data-root", str(DATA / "data"),
                 "--exec-root", str(RUN), "--pidfile", str(RUN / "dockerd.pid"),
                 "-H", DOCKER_HOST],
                stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        logger.info("started the userns-remap dockerd, pid %d (log: %s)", self.process.pid, log)
        deadline = time.monotonic() + START_TIMEOUT
        while not answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the userns-remap dockerd did not start; see {log}")
            time.sleep(0.5)

    def _create_bridge(self) -> None:
        if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True,
                          check=False).returncode == 0:
            return
        for command in (["ip", "link", "add", "name", BRIDGE, "type", "bridge"],
                        ["ip", "address", "add", BRIDGE_ADDRESS, "dev", BRIDGE],
                        ["ip", "link", "set", BRIDGE, "up"]):
            subprocess.run(command, capture_output=True, check=True)
        self.created_bridge = True

    def ensure_image(self, tag: str) -> None:
        """Copy ``tag`` from the main daemon; remapped daemons keep their own images."""
        if docker("image", "inspect", tag, check=False).returncode == 0:
            return
        logger.info("loading %s into the userns-remap dockerd", tag)
        environment = {key: value for key, value in os.environ.items() if key != "DOCKER_HOST"}
        saved = subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE,
                                 env=environment)
        loaded = subprocess.run(["docker", "load", "--quiet"], stdin=saved.stdout,
                                capture_output=True, check=False,
                                env={**os.environ, "DOCKER_HOST": DOCKER_HOST})
        if saved.wait() != 0 or loaded.returncode != 0:
            raise RuntimeError(f"loading {tag} failed: {loaded.stderr.decode(errors='replace')}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            logger.info("stopped the userns-remap dockerd")
        if self.created_bridge:
            subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)
