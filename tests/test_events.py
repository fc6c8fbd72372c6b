"""S3 event records: captured MinIO and AWS-shaped payloads, parsed and routed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cutor import keys
from cutor.events import InvalidEvent, make_event, parse_records

EVENTS = Path(__file__).parent / "events"


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def test_minio_put_record() -> None:
    [record] = parse_records(load("minio_put.json"))
    assert record.bucket == "cutor"
    assert record.key == "submissions/0123456789abcdef0123456789abcdef/request.json"
    assert record.event_name == "s3:ObjectCreated:Put"
    assert record.is_created


def test_minio_key_is_url_decoded() -> None:
    [record] = parse_records(load("minio_put_encoded_key.json"))
    assert record.key == "odd name/ü+x.json"


def test_aws_put_record() -> None:
    [record] = parse_records(load("moto_sqs_put.json"))
    assert record.key == f"environments/{'a' * 64}/build.json"
    assert record.event_name == "ObjectCreated:Put"
    assert record.is_created


def test_removed_event_is_not_created() -> None:
    event = make_event("cutor", "x", event_name="s3:ObjectRemoved:Delete")
    [record] = parse_records(event)
    assert not record.is_created


@pytest.mark.parametrize("event", [{}, {"Records": [{"s3": {}}]}, {"Records": "x"}])
def test_malformed_event_raises(event: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent):
        parse_records(event)


@pytest.mark.parametrize(("key", "expected"), [
    (f"submissions/{'0' * 32}/request.json", (keys.Route.SUBMISSION_CREATED, "0" * 32)),
    (f"environments/{'a' * 64}/request.json", (keys.Route.BUILD_REQUESTED, "a" * 64)),
    (f"environments/{'a' * 64}/build.json", (keys.Route.BUILD_FINISHED, "a" * 64)),
    (f"submissions/{'0' * 32}/state.json", None),
    ("submissions/../request.json", None),
    (f"submissions/{'0' * 31}/request.json", None),
])
def test_route(key: str, expected: tuple[keys.Route, str] | None) -> None:
    assert keys.route(key) == expected
