"""Submission models: what a client sends, what Cutor stores, and what a client reads."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cutor.limits import LimitName, LimitOverrides, PhaseLimitTable

RUN_SCRIPT = "run.sh"
COMPILE_SCRIPT = "compile.sh"
NIX_FILE = "cutor.nix"
MAX_FILES = 1000
MAX_NAME_BYTES = 1024
MAX_ARGS = 1000
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_ENV = 1000
# Linux rejects a single argument or NAME=value string of 128 KiB or more (MAX_ARG_STRLEN)
# and all of them together beyond ARG_MAX (2 MiB with the default 8 MiB stack); the
# total leaves room for the phase's own command line.
MAX_ARGUMENT_BYTES = 128 * 1024 - 1
MAX_ARGUMENTS_TOTAL_BYTES = 1024 * 1024


def utc_now() -> datetime:
    return datetime.now(UTC)


class Status(StrEnum):
    PENDING = "PENDING"
    DEPENDENCIES_INSTALLED = "DEPENDENCIES_INSTALLED"
    COMPILED = "COMPILED"
    FINISHED = "FINISHED"
    DEPENDENCIES_FAILED = "DEPENDENCIES_FAILED"
    COMPILE_FAILED = "COMPILE_FAILED"
    INTERNAL_ERROR = "INTERNAL_ERROR"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {Status.FINISHED, Status.DEPENDENCIES_FAILED, Status.COMPILE_FAILED, Status.INTERNAL_ERROR}
)


def check_file_name(name: str) -> str:
    """Return ``name`` if it is a safe relative path; raise ValueError saying why not."""
    if not name:
        raise ValueError("file name is empty")
    if "\0" in name:
        raise ValueError(f"file name {name!r} contains a NUL byte")
    if "\\" in name:
        raise ValueError(f"file name {name!r} contains a backslash; use / between folders")
    if name.startswith("/"):
        raise ValueError(f"file name {name!r} is absolute; use a path relative to the workspace")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"file name is longer than {MAX_NAME_BYTES} bytes")
    parts = name.split("/")
    if ".." in parts or "." in parts or "" in parts:
        raise ValueError(f"file name {name!r} has an empty, '.' or '..' component")
    if any(len(part.encode()) > 255 for part in parts):
        raise ValueError(f"file name {name!r} has a component longer than 255 bytes")
    return name


class SubmissionFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    content: str
    encoding: str = "utf-8"
    executable: bool = False

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        return check_file_name(name)

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, encoding: str) -> str:
        if encoding not in ("utf-8", "base64"):
            raise ValueError(f"encoding {encoding!r} is not supported; use 'utf-8' or 'base64'")
        return encoding

    @model_validator(mode="after")
    def _check_content(self) -> SubmissionFile:
        self.data()
        return self

    def data(self) -> bytes:
        if self.encoding == "utf-8":
            return self.content.encode()
        try:
            return base64.b64decode(self.content, validate=True)
        except binascii.Error as error:
            raise ValueError(f"content of {self.name!r} is not valid base64: {error}") from None


class SubmissionRequest(BaseModel):
    """The JSON body of ``POST /submissions``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    files: list[SubmissionFile] = Field(min_length=1, max_length=MAX_FILES)
    inputs: str = ""
    args: list[str] = Field(default_factory=list, max_length=MAX_ARGS)
    env: dict[str, str] = Field(default_factory=dict)
    limits: LimitOverrides | None = None

    @field_validator("args")
    @classmethod
    def _check_args(cls, args: list[str]) -> list[str]:
        for index, arg in enumerate(args):
            if "\0" in arg:
                raise ValueError(f"args[{index}] contains a NUL byte")
            if len(arg.encode()) > MAX_ARGUMENT_BYTES:
                raise ValueError(f"args[{index}] is longer than {MAX_ARGUMENT_BYTES} bytes, "
                                 "the kernel's limit for one argument; pass it in a file")
        return args

    @field_validator("env")
    @classmethod
    def _check_env(cls, env: dict[str, str]) -> dict[str, str]:
        if len(env) > MAX_ENV:
            raise ValueError(f"env has {len(env)} variables; at most {MAX_ENV} are allowed")
        for name, value in env.items():
            if len(f"{name}={value}".encode()) > MAX_ARGUMENT_BYTES:
                raise ValueError(f"environment variable {name!r} is longer than "
                                 f"{MAX_ARGUMENT_BYTES} bytes; pass its value in a file")
            if not ENV_NAME.match(name):
                raise ValueError(
                    f"environment variable name {name!r} is invalid; use letters, digits "
                    "and _, not starting with a digit"
                )
            if "\0" in value:
                raise ValueError(f"value of environment variable {name!r} contains a NUL byte")
        return env

    @field_validator("files")
    @classmethod
    def _check_files(cls, files: list[SubmissionFile]) -> list[SubmissionFile]:
        names = [file.name for file in files]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"file name {name!r} appears more than once")
            seen.add(name)
        for name in names:
            for index in range(1, name.count("/") + 1):
                folder = "/".join(name.split("/")[:index])
                if folder in seen:
                    raise ValueError(f"file {folder!r} is also used as a folder by {name!r}")
        if RUN_SCRIPT not in seen:
            raise ValueError(f"files must contain {RUN_SCRIPT}, the script of the run phase")
        return files

    @model_validator(mode="after")
    def _check_argument_total(self) -> SubmissionRequest:
        total = sum(len(arg.encode()) + 1 for arg in self.args)
        total += sum(len(f"{name}={value}".encode()) + 1 for name, value in self.env.items())
        if total > MAX_ARGUMENTS_TOTAL_BYTES:
            raise ValueError(f"args and env add up to {total} bytes; at most "
                             f"{MAX_ARGUMENTS_TOTAL_BYTES} fit on a command line, so pass "
                             "large values in files")
        return self

    def workspace_bytes(self) -> int:
        return sum(len(file.data()) for file in self.files)

    def file(self, name: str) -> SubmissionFile | None:
        return next((file for file in self.files if file.name == name), None)

    @property
    def cutor_nix(self) -> str | None:
        file = self.file(NIX_FILE)
        if file is None:
            return None
        return file.data().decode(errors="replace")


class SubmissionRecord(BaseModel):
    """The stored, immutable form of a submission."""

    id: str
    created_at: datetime
    request: SubmissionRequest
    limits: PhaseLimitTable
    environment_id: str | None = None
    owner: str | None = None


class PhaseResult(BaseModel):
    """One phase's outcome; stdout and stderr are stored base64-encoded, byte-exact."""

    stdout: str = ""
    stderr: str = ""
    time: float = 0.0
    cpu_time: float = 0.0
    memory: int | None = None
    exit_code: int | None = None
    signal: str | None = None
    limit_exceeded: LimitName | None = None

    @classmethod
    def from_bytes(cls, stdout: bytes, stderr: bytes, **fields: object) -> PhaseResult:
        return cls(
            stdout=base64.b64encode(stdout).decode(),
            stderr=base64.b64encode(stderr).decode(),
            **fields,
        )

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.signal is None and self.limit_exceeded is None

    def to_json(self, *, raw_base64: bool) -> dict[str, object]:
        shown = self.model_dump(mode="json")
        if not raw_base64:
            for stream in ("stdout", "stderr"):
                shown[stream] = base64.b64decode(shown[stream]).decode("utf-8", errors="replace")
        return shown


class SubmissionState(BaseModel):
    """The mutable status object of a submission, as a client reads it."""

    id: str
    status: Status = Status.PENDING
    created_at: datetime
    updated_at: datetime
    dependencies: PhaseResult | None = None
    compile: PhaseResult | None = None
    run: PhaseResult | None = None
    error: str | None = None
    # The API key that created the submission; never shown to clients.
    owner: str | None = None

    def to_json(self, *, raw_base64: bool = False) -> dict[str, object]:
        hidden = {"dependencies", "compile", "run", "owner"}
        shown = self.model_dump(mode="json", exclude=hidden)
        for phase in ("dependencies", "compile", "run"):
            result: PhaseResult | None = getattr(self, phase)
            shown[phase] = None if result is None else result.to_json(raw_base64=raw_base64)
        return shown
