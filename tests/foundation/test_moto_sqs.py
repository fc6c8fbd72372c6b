"""The AWS path: an S3 bucket notification to an SQS queue, on moto."""

from __future__ import annotations

import json

import boto3
from cutor.events import parse_records
from moto import mock_aws


@mock_aws
def test_s3_notification_reaches_sqs() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="cutor-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    s3.create_bucket(Bucket="cutor")
    s3.put_bucket_notification_configuration(
        Bucket="cutor",
        NotificationConfiguration={"QueueConfigurations": [
            {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    s3.put_object(Bucket="cutor", Key="submissions/abc/request.json", Body=b"{}")

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    events = [json.loads(message["Body"]) for message in messages]
    records = [record for event in events if "Records" in event for record in parse_records(event)]
    assert [record.key for record in records] == ["submissions/abc/request.json"]
    assert records[0].bucket == "cutor"
