"""The object store adapter: JSON objects in one S3-compatible bucket, with conditional writes.

Conditional PUTs (``If-None-Match: *`` to create only, ``If-Match: <etag>`` to replace
only an unchanged object) let several workers share state without a database. MinIO and
S3 both support them. botocore errors never leave this module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cutor.errors import PreconditionFailed, StorageError
from cutor.settings import Settings

logger = logging.getLogger(__name__)

NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
# 409 ConditionalRequestConflict: a concurrent conditional write to the same key won.
PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


@dataclass(frozen=True)
class StoredObject:
    body: dict[str, Any]
    etag: str


class ObjectStore:
    """JSON objects under keys of one bucket."""

    def __init__(self, settings: Settings) -> None:
        access_key, secret_key = settings.storage_credentials()
        self.bucket = settings.bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.storage_endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=settings.storage_region,
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                s3={"addressing_style": "path"},
            ),
        )

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            if _code(error) not in NOT_FOUND_CODES:
                raise _convert(error, f"bucket {self.bucket}") from error
        except BotoCoreError as error:
            raise StorageError(f"storage unreachable: {error}") from error
        logger.info("creating bucket %s", self.bucket)
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _code(error) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise _convert(error, f"bucket {self.bucket}") from error

    def send_created_events_to(self, queue_arn: str) -> None:
        """Configure the bucket to send every ObjectCreated event to ``queue_arn``."""
        configuration = {
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        }
        try:
            self.client.put_bucket_notification_configuration(
                Bucket=self.bucket, NotificationConfiguration=configuration  # type: ignore[arg-type]
            )
        except ClientError as error:
            raise _convert(error, f"notification configuration of {self.bucket}") from error
        except BotoCoreError as error:
            raise StorageError(f"storage unreachable: {error}") from error

    def get(self, key: str) -> StoredObject | None:
        """Return the object at ``key``, or None when there is none."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"].read()
        except ClientError as error:
            if _code(error) in NOT_FOUND_CODES:
                return None
            raise _convert(error, key) from error
        except BotoCoreError as error:
            raise StorageError(f"reading {key} failed: {error}") from error
        return StoredObject(body=json.loads(body), etag=response["ETag"])

    def put(
        self, key: str, body: dict[str, Any], *, create_only: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Write ``body`` at ``key`` and return the new ETag.

        Raises PreconditionFailed when ``create_only`` is set and the key exists, or when
        ``if_match`` is given and the object changed since it was read.
        """
        arguments: dict[str, Any] = {
            "Bucket": self.bucket, "Key": key, "Body": json.dumps(body).encode(),
            "ContentType": "application/json",
        }
        if create_only:
            arguments["IfNoneMatch"] = "*"
        if if_match is not None:
            arguments["IfMatch"] = if_match
        try:
            response = self.client.put_object(**arguments)
        except ClientError as error:
            raise _convert(error, key) from error
        except BotoCoreError as error:
            raise StorageError(f"writing {key} failed: {error}") from error
        return str(response["ETag"])

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _code(error) not in NOT_FOUND_CODES:
                raise _convert(error, key) from error
        except BotoCoreError as error:
            raise StorageError(f"deleting {key} failed: {error}") from error

    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for entry in page.get("Contents", []):
                    yield entry["Key"]
        except ClientError as error:
            raise _convert(error, prefix) from error
        except BotoCoreError as error:
            raise StorageError(f"listing {prefix} failed: {error}") from error

    def ping(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"bucket {self.bucket} is not reachable: {error}") from error


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _convert(error: ClientError, key: str) -> StorageError:
    code = _code(error)
    if code in PRECONDITION_CODES:
        return PreconditionFailed(f"conditional write of {key} failed: {code}")
    return StorageError(f"storage request for {key} failed: {code}: {error}")
