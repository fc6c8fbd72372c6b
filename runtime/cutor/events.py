"""S3 event notifications, as AWS S3 and MinIO both send them, parsed at the edge.

The standard shape is ``{"Records": [{"eventName": ..., "s3": {"bucket": {"name"},
"object": {"key"}}}]}``. Object keys arrive URL-encoded (a space as ``+``), so they are
decoded here once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, ValidationError

from cutor import keys
from cutor.errors import CutorError


class InvalidEvent(CutorError):
    """An event that is not an S3 event notification."""


class _Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str


class _Object(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str


class _S3(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bucket: _Bucket
    object: _Object


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")
    eventName: str  # noqa: N815 - the field name the S3 event format fixes
    s3: _S3


class _Notification(BaseModel):
    model_config = ConfigDict(extra="ignore")
    Records: list[_Record]


class S3EventRecord(BaseModel):
    """One object-created or object-removed record: which bucket, which key, what happened."""

    model_config = ConfigDict(frozen=True)

    event_name: str
    bucket: str
    key: str

    @property
    def is_created(self) -> bool:
        return self.event_name.removeprefix("s3:").startswith("ObjectCreated:")


def parse_records(event: dict[str, Any]) -> list[S3EventRecord]:
    """Return the records of an S3 event notification; raise InvalidEvent otherwise."""
    try:
        notification = _Notification.model_validate(event)
    except ValidationError as error:
        raise InvalidEvent(f"not an S3 event notification: {error}") from error
    return [
        S3EventRecord(
            event_name=record.eventName,
            bucket=record.s3.bucket.name,
            key=unquote_plus(record.s3.object.key),
        )
        for record in notification.Records
    ]


def routed_records(event: dict[str, Any]) -> Iterator[tuple[keys.Route, str]]:
    """Yield the step and id of each created object in an event that starts a step."""
    for record in parse_records(event):
        routed = keys.route(record.key) if record.is_created else None
        if routed is not None:
            yield routed


def make_event(bucket: str, key: str, event_name: str = "s3:ObjectCreated:Put") -> dict[str, Any]:
    """Build a minimal S3 event notification, for re-dispatching work a sweep found."""
    return {
        "Records": [
            {
                "eventName": event_name,
                "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
            }
        ]
    }
