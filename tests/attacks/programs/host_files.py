"""Try to read host files and to write anywhere; print what worked as JSON.

Usage: host_files.py PATHS_JSON, a list of absolute host paths to try to read.
"""

import errno
import json
import os
import sys

# Written over in place; each must fail, or the sandbox could change its own image.
IMAGE_FILES = ["/etc/passwd", "/opt/cutor/supervisor.py", "/usr/bin/python3", "/bin/sh"]
SKIPPED_TREES = ("/proc", "/sys")


def read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return "read " + handle.read(4096).decode(errors="replace")
    except OSError as error:
        return errno.errorcode.get(error.errno or 0, str(error))


def writable_folders() -> list[str]:
    """Return every folder in which a new file can be created."""
    found = []
    for root, folders, _ in os.walk("/"):
        if root.startswith(SKIPPED_TREES):
            folders[:] = []
            continue
        probe = os.path.join(root, ".cutor-write-probe")
        try:
            descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            continue
        os.close(descriptor)
        os.unlink(probe)
        found.append(root)
    return sorted(found)


def overwrite(path: str) -> str:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError as error:
        return errno.errorcode.get(error.errno or 0, str(error))
    os.close(descriptor)
    return "opened for writing"


def main() -> None:
    paths = json.loads(sys.argv[1])
    report = {
        "reads": {path: read(path) for path in paths},
        "writable": writable_folders(),
        "overwrites": {path: overwrite(path) for path in IMAGE_FILES},
        "environment": dict(os.environ),
    }
    print(json.dumps(report))


main()
