"""boto3 clients and resources for the local stack."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_REGION = "eu-west-1"
# moto accepts any credentials; these make sure nothing reaches for real ones.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": DEFAULT_REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def client(service: str, endpoint_url: str, region: str = DEFAULT_REGION) -> Any:
    """Create a boto3 client for a local endpoint, with the local test credentials."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        # moto's threaded server can fail a GetRecords that races a PutRecords on the same
        # shard with HTTP 500 ("OrderedDict mutated during iteration"); retries absorb it.
        config=Config(retries={"max_attempts": 10, "mode": "standard"}),
    )


def create_streams(kinesis_client: Any, names: Iterable[str], shard_count: int = 1) -> None:
    """Create Kinesis streams that do not exist yet and wait until they are active."""
    for name in names:
        # A stream that exists already is kept as it is.
        with contextlib.suppress(kinesis_client.exceptions.ResourceInUseException):
            kinesis_client.create_stream(StreamName=name, ShardCount=shard_count)
        kinesis_client.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
        )


def create_bucket(s3_client: Any, bucket: str, region: str = DEFAULT_REGION) -> None:
    """Create an S3 bucket unless it exists."""
    existing = {item["Name"] for item in s3_client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3_client.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
        )


def create_queue(sqs_client: Any, name: str) -> tuple[str, str]:
    """Create an SQS queue (or find it) and return its URL and ARN."""
    url = sqs_client.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def drain_queue(sqs_client: Any, queue_url: str, wait_seconds: float = 0.0) -> list[str]:
    """Receive and delete every message now in the queue; return the bodies."""
    bodies: list[str] = []
    deadline = time.monotonic() + wait_seconds
    while True:
        response = sqs_client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        messages = response.get("Messages", [])
        if not messages:
            if time.monotonic() >= deadline:
                return bodies
            time.sleep(0.1)
            continue
        bodies.extend(message["Body"] for message in messages)
        sqs_client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(messages)
            ],
        )
