"""Errors Cutor raises. Client-visible ones carry an HTTP status and name the field."""

from __future__ import annotations


class CutorError(Exception):
    """Base of every error Cutor raises on purpose."""


class ClientError(CutorError):
    """An error a client caused and can fix; the API turns it into a JSON 4xx."""

    status_code = 400

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"error": {"field": self.field, "message": self.message}}


class InvalidRequest(ClientError):
    status_code = 400


class Forbidden(ClientError):
    status_code = 403


class NotFound(ClientError):
    status_code = 404


class Conflict(ClientError):
    status_code = 409


class PayloadTooLarge(ClientError):
    status_code = 413


class StorageError(CutorError):
    """The object store failed or is unreachable."""


class PreconditionFailed(StorageError):
    """A conditional write lost: the object exists, or changed since it was read."""


class SandboxError(CutorError):
    """The sandbox could not be created, run or read: the platform failed, not the program."""


class NixError(CutorError):
    """Nix could not be called: the platform failed, not the cutor.nix."""
