"""Build the sandbox image offline: debootstrap a Debian rootfs, import it, add Cutor's layer.

No container registry is reachable, so the base image comes from Debian packages. Both
tags carry a hash of their recipe, so an image is rebuilt only when its recipe changes.
Run as ``python -m cutor.image build`` (root, Docker Engine running).
"""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

RECIPE_DIR = Path(__file__).resolve().parents[2] / "sandbox-image"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Bump when the way the base rootfs is made changes, so that the base tag changes too.
BASE_RECIPE_REVISION = "1"


def _digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(hashlib.sha256(part).digest())
    return hasher.hexdigest()[:16]


def base_packages() -> list[str]:
    lines = (RECIPE_DIR / "packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def base_image_tag() -> str:
    recipe = " ".join([SUITE, BASE_RECIPE_REVISION, *base_packages()]).encode()
    return f"cutor-sandbox-base:{_digest(recipe)}"


def sandbox_image_tag() -> str:
    layer = _digest(
        base_image_tag().encode(),
        (RECIPE_DIR / "Dockerfile").read_bytes(),
        (RECIPE_DIR / "supervisor.py").read_bytes(),
        (RECIPE_DIR / "statx_shim.c").read_bytes(),
    )
    return f"cutor-sandbox:{layer}"


def _image_exists(tag: str) -> bool:
    result = subprocess.run(
        ["docker", "image", "inspect", tag], capture_output=True, check=False
    )
    return result.returncode == 0


def debian_mirror() -> str:
    """Return the Debian mirror apt uses on this host, so debootstrap reaches the same one."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        match = re.search(r"^(?:URIs:|deb)\s+(\S+/debian)/?\s*$", text, re.MULTILINE)
        match = match or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s", text, re.MULTILINE)
        if match:
            return match.group(1)
    return DEFAULT_MIRROR


def build_base_image(tag: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cutor-rootfs-") as workdir:
        rootfs = Path(workdir) / "rootfs"
        mirror = debian_mirror()
        logger.info("debootstrapping %s from %s into %s", SUITE, mirror, rootfs)
        subprocess.run(
            [
                "debootstrap", "--variant=minbase", f"--include={','.join(base_packages())}",
                SUITE, str(rootfs), mirror,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            subprocess.run(["find", str(rootfs / leftover), "-type", "f", "-delete"], check=True)
        logger.info("importing the rootfs as %s", tag)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout, check=True,
                       stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise RuntimeError(f"tar of {rootfs} failed with exit code {tar.returncode}")


def build_sandbox_image(base_tag: str, tag: str) -> None:
    logger.info("building %s on %s", tag, base_tag)
    subprocess.run(
        ["docker", "build", "--quiet", "--build-arg", f"BASE={base_tag}", "-t", tag,
         str(RECIPE_DIR)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"},
    )


def ensure_images() -> str:
    """Build whichever of the two images is missing; return the sandbox image tag."""
    base_tag, tag = base_image_tag(), sandbox_image_tag()
    if not _image_exists(base_tag):
        build_base_image(base_tag)
    if not _image_exists(tag):
        build_sandbox_image(base_tag, tag)
    return tag


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="cutor: %(message)s")
    if argv == ["build"]:
        print(ensure_images())
        return 0
    if argv == ["tag"]:
        print(sandbox_image_tag())
        return 0
    print("usage: python -m cutor.image build|tag", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
