"""Symlinks and names: Cutor's host side never follows a sandbox's links, and bad names get 400.

Outputs reach the host through the supervisor's pipes and the workspace disappears with
the container's tmpfs, so no host-side code opens a path inside the sandbox. The test
proves it from the outside: the host files that the links point at keep their content
and their modification time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.attacks.conftest import Planted, sandbox_containers, shell_body
from tests.conftest import Stack

HOST_TARGETS = ["/etc/shadow", "/etc/passwd", "/root", "/var/run/docker.sock"]


def fingerprint(path: Path) -> tuple[str, int, int]:
    """Return a file's content hash, modification time and mode, or a folder's listing."""
    status = path.stat()
    if path.is_dir():
        content = "\n".join(sorted(os.listdir(path))).encode()
    elif path.is_file():
        content = path.read_bytes()
    else:
        content = b""
    return hashlib.sha256(content).hexdigest(), status.st_mtime_ns, status.st_mode


def test_workspace_links_not_followed(stack: Stack, planted: Planted) -> None:
    targets = [*HOST_TARGETS, *(str(path) for path in planted.paths)]
    existing = [Path(target) for target in targets if Path(target).exists()]
    before = {path: fingerprint(path) for path in existing}
    links = "\n".join(
        f"ln -s {target} /work/link{index}; ln -s {target} /tmp/farm/link{index}"
        for index, target in enumerate(targets)
    )
    run_sh = f"""
mkdir -p /tmp/farm
{links}
ln -s / /work/root; ln -s /tmp/farm /work/farm; ln -s /work /tmp/loop
python3 -c 'import os
for i in range(2000): os.symlink("/etc/shadow", f"/tmp/farm/many{{i}}")'
echo written > /work/link0 2>/dev/null; echo written > /tmp/farm/link1 2>/dev/null
cat /work/link0 /work/link{len(HOST_TARGETS)} 2>/dev/null
echo links made
"""
    result = stack.run(shell_body(run_sh))

    assert result["status"] == "FINISHED", result
    assert result["run"]["stdout"] == "links made\n"
    assert planted.secret not in result["run"]["stderr"]
    for path, fingerprinted in before.items():
        assert fingerprint(path) == fingerprinted, f"{path} changed"
    assert sandbox_containers(stack) == []


INVALID_NAMES = {
    "parent": "../escape.txt",
    "nested parent": "src/../../escape.txt",
    "absolute": "/etc/passwd",
    "nul": "a\x00b",
    "backslash": "a\\..\\b",
    "dot": "./run.sh",
    "empty component": "src//a",
    "empty": "",
    "long component": "x" * 256,
}


@pytest.mark.parametrize("name", sorted(INVALID_NAMES))
def test_invalid_name_rejected(runc_stack: Stack, name: str) -> None:
    body = {"files": [{"name": "run.sh", "content": "echo hi"},
                      {"name": INVALID_NAMES[name], "content": "x"}]}
    response = runc_stack.client.post("/submissions", json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"].startswith("files"), response.text


COLLIDING = {
    "duplicate": ["run.sh", "run.sh"],
    "file and folder": ["src", "src/main.c"],
    "folder and file": ["src/main.c", "src"],
}


@pytest.mark.parametrize("case", sorted(COLLIDING))
def test_colliding_names_rejected(runc_stack: Stack, case: str) -> None:
    names = ["run.sh", *COLLIDING[case]] if case != "duplicate" else COLLIDING[case]
    body = {"files": [{"name": name, "content": "echo hi"} for name in names]}
    response = runc_stack.client.post("/submissions", json=body)

    assert response.status_code == 400, response.text
