"""Run a local MinIO server: credentials generated on first start, data under the state dir."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[2]
BUNDLED_BINARY = REPOSITORY / ".cutor" / "bin" / "minio"


def minio_binary() -> Path:
    if BUNDLED_BINARY.exists():
        return BUNDLED_BINARY
    found = shutil.which("minio")
    if found is None:
        raise RuntimeError(
            f"no MinIO server binary at {BUNDLED_BINARY} or on PATH; run 'make setup' to build it"
        )
    return Path(found)


def address_in_use(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, int(port))) == 0


def ensure_credentials(path: Path) -> tuple[str, str]:
    """Return the stored root credentials, generating them on first use (mode 0600)."""
    if path.exists():
        stored = json.loads(path.read_text())
        return str(stored["access_key"]), str(stored["secret_key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = f"cutor-{secrets.token_hex(6)}", secrets.token_urlsafe(30)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"access_key": access_key, "secret_key": secret_key}, handle)
    logger.info("generated MinIO credentials in %s", path)
    return access_key, secret_key


WEBHOOK_TARGET = "CUTOR"
WEBHOOK_ARN = f"arn:minio:sqs::{WEBHOOK_TARGET}:webhook"


def webhook_environment(url: str, token: str) -> dict[str, str]:
    # No queue directory: with one, MinIO stores each event on disk and sends it from a
    # periodic scan, which added about 2 s per event here. An event sent while the
    # runner is down is lost instead, and the runner's sweep finds that work.
    return {
        f"MINIO_NOTIFY_WEBHOOK_ENABLE_{WEBHOOK_TARGET}": "on",
        f"MINIO_NOTIFY_WEBHOOK_ENDPOINT_{WEBHOOK_TARGET}": url,
        f"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_{WEBHOOK_TARGET}": f"Bearer {token}",
    }


class MinioServer:
    """A MinIO server process on 127.0.0.1 with its data in ``state_dir/minio/data``."""

    def __init__(self, state_dir: Path, address: str) -> None:
        self.state_dir = state_dir
        self.address = address
        self.data_dir = state_dir / "minio" / "data"
        self.credentials_path = state_dir / "minio" / "credentials.json"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}"

    def start(self, webhook: tuple[str, str] | None = None, timeout: float = 60.0) -> None:
        """Start the server; ``webhook`` is (URL, bearer token) of a notification target."""
        access_key, secret_key = ensure_credentials(self.credentials_path)
        if address_in_use(self.address):
            raise RuntimeError(
                f"cannot start MinIO: {self.address} is already in use; stop the other "
                f"server or set CUTOR_MINIO_ADDRESS to a free address"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.state_dir / "minio" / "server.log"
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.state_dir / "minio"),
            "MINIO_ROOT_USER": access_key,
            "MINIO_ROOT_PASSWORD": secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        if webhook is not None:
            environment.update(webhook_environment(*webhook))
        host = self.address.rsplit(":", 1)[0]
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                # A test run or `cutor up` killed with SIGKILL cannot stop its MinIO, so
                # the kernel sends MinIO SIGTERM when the thread that started it dies.
                ["setpriv", "--pdeathsig", "SIGTERM", str(minio_binary()), "server", "--quiet",
                 "--address", self.address, "--console-address", f"{host}:0",
                 str(self.data_dir)],
                env=environment, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        logger.info("started MinIO pid %d on %s (log: %s)",
                    self.process.pid, self.address, log_path)
        self.wait_ready(timeout, log_path)

    def wait_ready(self, timeout: float, log_path: Path) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.endpoint}/minio/health/ready"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"MinIO exited with code {self.process.returncode}; see {log_path}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"MinIO did not become ready on {self.address} within {timeout}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        logger.info("stopped MinIO on %s", self.address)
