"""The host side of the supervisor's frame protocol (see sandbox-image/supervisor.py)."""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import IO, Any

from cutor.errors import SandboxError

HEADER = struct.Struct(">cI")
STDOUT, STDERR, RESULT = b"O", b"E", b"R"
# A result frame is a small JSON object; anything larger means the stream is corrupt.
MAX_RESULT_BYTES = 64 * 1024


@dataclass
class PhaseStreams:
    """Bytes a phase wrote to stdout and stderr, capped at the phase's output limit."""

    limit: int
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)

    def append(self, kind: bytes, data: bytes) -> None:
        target = self.stdout if kind == STDOUT else self.stderr
        # The supervisor already stops at the limit; the host does not trust that.
        target.extend(data[: max(0, self.limit - len(target))])


def encode_command(command: dict[str, Any]) -> bytes:
    return json.dumps(command).encode() + b"\n"


def files_command(root: str, files: list[tuple[str, bytes, int]]) -> bytes:
    entries = [
        {"name": name, "data": base64.b64encode(data).decode(), "mode": mode}
        for name, data, mode in files
    ]
    return encode_command({"op": "files", "root": root, "files": entries})


def read_exact(stream: IO[bytes], size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = stream.read(size - len(chunks))
        if not chunk:
            raise EOFError
        chunks.extend(chunk)
    return bytes(chunks)


def read_until_result(stream: IO[bytes], streams: PhaseStreams | None) -> dict[str, Any]:
    """Read frames until a result frame; append output frames to ``streams``.

    Raises EOFError when the container's stdout closes first (the container died).
    """
    while True:
        kind, size = HEADER.unpack(read_exact(stream, HEADER.size))
        if kind == RESULT:
            if size > MAX_RESULT_BYTES:
                raise SandboxError(f"supervisor sent a {size}-byte result frame")
            result: dict[str, Any] = json.loads(read_exact(stream, size))
            return result
        if kind not in (STDOUT, STDERR) or streams is None:
            raise SandboxError(f"supervisor sent an unexpected frame {kind!r}")
        if size > streams.limit + 65536:
            raise SandboxError(f"supervisor sent a {size}-byte output frame")
        streams.append(kind, read_exact(stream, size))
