"""examples/workflow/publish.py against the example's S3-compatible store (moto, IAM authentication
on): the training job's key publishes and the serving key reads the same bytes; a published key is
never overwritten; the serving key, a wrong secret or a bad URI are refused with one line saying
why, nothing written."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from workflow_support import EXAMPLE, read_env

KEY = "cat_detector/v1/model.pt"
URI = f"s3://models/{KEY}"


def publish(file: Path, uri: str, credentials: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= credentials | {"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent"}
    command = [sys.executable, str(EXAMPLE / "publish.py"), str(file), uri]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def client(credentials: dict[str, str]) -> Any:
    import botocore.session

    return botocore.session.Session().create_client(
        "s3",
        region_name=credentials["AWS_REGION"],
        endpoint_url=credentials["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def keys(object_store: Path) -> dict[str, dict[str, str]]:
    store = read_env(object_store / "store.env")
    return {
        "trainer": read_env(object_store / "trainer.env"),
        "serving": read_env(object_store / "serving-credentials.env") | store,
    }


def test_publish_once_read_by_the_serving_key_never_overwritten(
    keys: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    weights = tmp_path / "model.pt"
    weights.write_bytes(os.urandom(300_000))
    first = publish(weights, URI, keys["trainer"])
    assert (first.returncode, first.stdout, first.stderr) == (0, f"{URI}: uploaded\n", "")

    # What a serving pod does: read it with the read-only key; the object says its digest.
    stored = client(keys["serving"]).get_object(Bucket="models", Key=KEY)
    assert stored["Body"].read() == weights.read_bytes()
    assert stored["Metadata"] == {"sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}

    # Publishing the same bytes again (a retried job) is a no-op; other bytes are refused.
    again = publish(weights, URI, keys["trainer"])
    assert (again.returncode, again.stdout) == (0, f"{URI}: already published\n")
    other = tmp_path / "other.pt"
    other.write_bytes(b"other weights")
    refused = publish(other, URI, keys["trainer"])
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        f"publish.py: {URI} already holds other bytes; a published model is immutable (publish it under a new key)\n"
    )
    assert client(keys["serving"]).get_object(Bucket="models", Key=KEY)["Body"].read() == weights.read_bytes()


@pytest.mark.parametrize(
    ("who", "uri", "reason"),
    [
        (
            "serving",
            "s3://models/cat_detector/v2/model.pt",
            "access denied: the credentials need s3:GetObject and s3:PutObject on "
            "arn:aws:s3:::models/cat_detector/v2/model.pt (and s3:ListBucket on the bucket)",
        ),
        (
            "wrong secret",
            "s3://models/cat_detector/v2/model.pt",
            "SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        ),
        (
            "unknown key",
            "s3://models/cat_detector/v2/model.pt",
            "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.",
        ),
    ],
)
def test_refusals_say_why_and_write_nothing(
    keys: dict[str, dict[str, str]], tmp_path: Path, who: str, uri: str, reason: str
) -> None:
    credentials = {
        "serving": keys["serving"],
        "wrong secret": keys["trainer"] | {"AWS_SECRET_ACCESS_KEY": "not-the-secret"},
        "unknown key": keys["trainer"] | {"AWS_ACCESS_KEY_ID": "AKIANOSUCHKEY0000000"},
    }[who]
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    result = publish(weights, uri, credentials)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"publish.py: cannot publish to {uri}: {reason}\n"
    listing = client(keys["trainer"]).list_objects_v2(Bucket="models", Prefix="cat_detector/v2/")
    assert listing.get("KeyCount", 0) == 0


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("https://models.example.com/m.pt", "https://models.example.com/m.pt: not an s3://BUCKET/KEY URI"),
        ("s3://models", "s3://models: name a bucket and an object key (s3://BUCKET/KEY)"),
        ("s3://models/folder/", "s3://models/folder/: name a bucket and an object key (s3://BUCKET/KEY)"),
    ],
)
def test_a_bad_uri_is_refused_before_any_request(tmp_path: Path, uri: str, message: str) -> None:
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    result = publish(weights, uri, {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1", "AWS_REGION": "eu-west-1"})
    assert (result.returncode, result.stderr) == (1, f"publish.py: {message}\n")
