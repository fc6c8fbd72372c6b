"""The real MinIO server: object round trips through both SDKs, and bucket notifications."""

from __future__ import annotations

import io
import json
import queue
import secrets
import threading
from typing import Any

import boto3
from cutor.events import parse_records
from cutor.minio_server import WEBHOOK_ARN, MinioServer
from cutor.webhook import WebhookReceiver
from minio import Minio

from tests.conftest import free_address


def s3_client(server: MinioServer) -> Any:
    access_key, secret_key = server_credentials(server)
    return boto3.client(
        "s3", endpoint_url=server.endpoint, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key, region_name="us-east-1",
    )


def server_credentials(server: MinioServer) -> tuple[str, str]:
    stored = json.loads(server.credentials_path.read_text())
    return stored["access_key"], stored["secret_key"]


def test_boto3_put_and_get(minio: MinioServer) -> None:
    client = s3_client(minio)
    bucket = f"boto-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="a/b.txt", Body=b"\x00binary\xff")
    body = client.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read()
    assert body == b"\x00binary\xff"


def test_minio_sdk_put_and_get(minio: MinioServer) -> None:
    access_key, secret_key = server_credentials(minio)
    client = Minio(minio.address, access_key=access_key, secret_key=secret_key, secure=False)
    bucket = f"sdk-{secrets.token_hex(4)}"
    client.make_bucket(bucket)
    client.put_object(bucket, "x.json", io.BytesIO(b'{"a": 1}'), length=8)
    response = client.get_object(bucket, "x.json")
    try:
        assert response.read() == b'{"a": 1}'
    finally:
        response.close()
        response.release_conn()


def test_credentials_file_is_private(minio: MinioServer) -> None:
    assert minio.credentials_path.stat().st_mode & 0o777 == 0o600


def test_notification_reaches_webhook(tmp_path: Any) -> None:
    received: queue.Queue[dict[str, Any]] = queue.Queue()
    receiver = WebhookReceiver(free_address(), received.put)
    threading.Thread(target=receiver.serve_forever, args=(0.2,), daemon=True).start()
    server = MinioServer(tmp_path, free_address())
    server.start(webhook=(receiver.url, receiver.token))
    try:
        client = s3_client(server)
        client.create_bucket(Bucket="events")
        client.put_bucket_notification_configuration(
            Bucket="events",
            NotificationConfiguration={"QueueConfigurations": [{
                "QueueArn": WEBHOOK_ARN, "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "watched/"}]}},
            }]},
        )
        client.put_object(Bucket="events", Key="ignored/a.json", Body=b"{}")
        client.put_object(Bucket="events", Key="watched/file name.json", Body=b"{}")
        records = parse_records(received.get(timeout=20))
        assert [record.key for record in records] == ["watched/file name.json"]
        assert records[0].bucket == "events"
        assert records[0].is_created
        assert received.empty()
    finally:
        server.stop()
        receiver.shutdown()
