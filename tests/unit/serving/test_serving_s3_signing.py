"""s3:// without a server: URI parsing, credentials and endpoints resolved the AWS way, the signed
request botocore would send, and the words for each refusal. The fetch itself, against a real
S3-compatible server, is in tests/e2e/serving/test_serving_s3.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from overseer_serving import s3
from overseer_serving.errors import FetchFailed, InvalidConfig


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing inherited: no AWS_ variables, no ~/.aws files, no instance metadata look-up."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def env_credentials(monkeypatch: pytest.MonkeyPatch, token: str | None = None) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-never-shown")
    if token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)


def test_uris() -> None:
    assert s3.parse_uri("s3://models/cat/v2 final.pt") == s3.S3Location("models", "cat/v2 final.pt")
    assert s3.parse_uri("s3://models/a?b#c").key == "a?b#c"  # the key is literal, as in the AWS CLI
    for uri, message in [
        ("s3://models", "expected s3://BUCKET/KEY, found 's3://models'"),
        ("s3://models/", "expected s3://BUCKET/KEY"),
        ("s3:///key", "expected s3://BUCKET/KEY"),
        ("s3://bad bucket/key", "'bad bucket' is not a valid S3 bucket name"),
        ("s3://b/" + "k" * 1025, "longer than 1024 bytes"),
    ]:
        with pytest.raises(InvalidConfig, match=message):
            s3.parse_uri(uri)


def test_env_credentials_and_an_endpoint_override_sign_a_path_style_get(monkeypatch: pytest.MonkeyPatch) -> None:
    env_credentials(monkeypatch, token="session-token")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://objects.internal:9000")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    signed = s3.sign_get(s3.parse_uri("s3://models/cat/v2 final.pt"), timeout_s=5)
    assert signed.url == "http://objects.internal:9000/models/cat/v2%20final.pt"
    assert signed.endpoint == "http://objects.internal:9000"
    assert signed.region == "eu-west-1"
    assert signed.credentials == "the environment (AWS_ACCESS_KEY_ID)"
    assert signed.headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEKEY000001/"
    ) and "/eu-west-1/s3/aws4_request" in signed.headers["Authorization"]
    assert signed.headers["X-Amz-Security-Token"] == "session-token"
    assert "secret-never-shown" not in repr(signed)


def test_aws_itself_is_addressed_virtual_hosted_and_the_style_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    env_credentials(monkeypatch)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    location = s3.parse_uri("s3://models/cat.pt")
    assert s3.sign_get(location, timeout_s=5).url == "https://models.s3.us-west-2.amazonaws.com/cat.pt"
    assert s3.sign_get(location, timeout_s=5, addressing_style="path").url == (
        "https://s3.us-west-2.amazonaws.com/models/cat.pt"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://minio.example:9000")
    assert s3.sign_get(location, timeout_s=5).url == "https://minio.example:9000/models/cat.pt"
    assert s3.sign_get(location, timeout_s=5, addressing_style="virtual").url == (
        "https://models.minio.example:9000/cat.pt"
    )


def test_a_mounted_shared_credentials_file_and_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"  # what a Secret mounted via spec.serving.env looks like
    credentials.write_text("[serving]\naws_access_key_id = AKIAFROMFILE00000001\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "serving")
    signed = s3.sign_get(s3.parse_uri("s3://models/cat.pt"), timeout_s=5)
    assert "Credential=AKIAFROMFILE00000001/" in signed.headers["Authorization"]
    assert signed.credentials == f"the shared credentials file {credentials} (profile serving)"


def test_missing_or_unusable_credentials_are_a_fetch_failure_that_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    location = s3.parse_uri("s3://models/cat.pt")
    with pytest.raises(FetchFailed) as none:
        s3.sign_get(location, timeout_s=5)
    assert none.value.status == 502
    assert none.value.message.startswith(
        "cannot fetch s3://models/cat.pt: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "or AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE"
    )
    monkeypatch.setenv("AWS_PROFILE", "nosuchprofile")
    with pytest.raises(FetchFailed, match=r"AWS configuration: ProfileNotFound: .*nosuchprofile"):
        s3.sign_get(location, timeout_s=5)
    monkeypatch.delenv("AWS_PROFILE")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAONLYTHEKEY000001")  # and no secret
    with pytest.raises(FetchFailed, match="AWS configuration: PartialCredentialsError"):
        s3.sign_get(location, timeout_s=5)


SIGNED = s3.SignedRequest(
    "http://127.0.0.1:9/models/cat.pt", {}, "http://127.0.0.1:9", "us-east-1", "the environment (AWS_ACCESS_KEY_ID)"
)


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (404, "NoSuchBucket", "no such bucket 'models' at http://127.0.0.1:9"),
        (404, "NoSuchKey", "no such key 'cat.pt' in bucket 'models'"),
        (
            403,
            "AccessDenied",
            "access denied to the credentials from the environment (AWS_ACCESS_KEY_ID): they need s3:GetObject on "
            "arn:aws:s3:::models/cat.pt (S3 also answers this for a missing key when they may not list the bucket)",
        ),
        (
            403,
            "InvalidAccessKeyId",
            "the access key id of the credentials from the environment (AWS_ACCESS_KEY_ID) is not known to "
            "http://127.0.0.1:9",
        ),
        (
            403,
            "SignatureDoesNotMatch",
            "the secret key of the credentials from the environment (AWS_ACCESS_KEY_ID) does not match its access "
            "key id",
        ),
        (
            400,
            "ExpiredToken",
            "the session token of the credentials from the environment (AWS_ACCESS_KEY_ID) has expired",
        ),
        (503, "SlowDown", "the store answered HTTP 503 SlowDown: Please reduce your request rate."),
        (502, "", "the store answered HTTP 502"),
    ],
)
def test_each_refusal_is_said_in_words_that_point_at_the_fix(status: int, code: str, reason: str) -> None:
    fields = {"Code": code, "Message": "Please reduce your request rate."} if code else {}
    message = s3._refusal(s3.parse_uri("s3://models/cat.pt"), SIGNED, status, fields)
    assert message == f"cannot fetch s3://models/cat.pt: {reason}"
