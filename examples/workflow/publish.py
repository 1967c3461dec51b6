"""Publish a weights file to an object store: `s3://BUCKET/KEY`, the standard AWS way (botocore: the
credential chain, endpoint and region from the environment, SigV4), as the serving pods read it.

    python examples/workflow/publish.py model.pt s3://models/cat_detector/v1/model.pt

Credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, web identity, instance role...
S3-compatible stores (MinIO, Ceph, R2, the local moto server): AWS_ENDPOINT_URL_S3.

A published model is immutable: the manifest pins its digest, and pods that start later fetch it
again. So an object that exists is never overwritten: publishing the same bytes again is a no-op,
other bytes under the same key are refused. The object carries its SHA-256 as metadata
(`x-amz-meta-sha256`, what a re-publish compares), and S3 checks the upload against it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

CHUNK = 1024 * 1024


class PublishError(Exception):
    """The weights could not be published; one line saying why."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise PublishError(f"{uri}: not an s3://BUCKET/KEY URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise PublishError(f"{uri}: name a bucket and an object key (s3://BUCKET/KEY)")
    return bucket, key


def sha256_of(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.digest()


def s3_client() -> Any:
    import botocore.config
    import botocore.session

    session = botocore.session.get_session()
    # Path-style with an endpoint override: what S3-compatible stores expect (as the serving pods do).
    style = "path" if session.get_config_variable("endpoint_url") or _endpoint_from_env() else "auto"
    config = botocore.config.Config(s3={"addressing_style": style}, retries={"max_attempts": 3, "mode": "standard"})
    return session.create_client("s3", config=config)


def _endpoint_from_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def publish(path: Path, uri: str) -> str:
    """Upload `path` to `uri` unless the same bytes are there; return `uploaded` or `already published`."""
    import botocore.exceptions

    bucket, key = split_s3_uri(uri)
    digest = sha256_of(path)
    try:
        s3 = s3_client()
        existing = _published_digest(s3, bucket, key)
        if existing is not None:
            if existing == digest.hex():
                return "already published"
            raise PublishError(
                f"{uri} already holds other bytes; a published model is immutable (publish it under a new key)"
            )
        with path.open("rb") as body:
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ChecksumSHA256=base64.b64encode(digest).decode(),
                Metadata={"sha256": digest.hex()},
            )
    except botocore.exceptions.ClientError as error:
        raise PublishError(f"cannot publish to {uri}: {_explain(error, bucket, key)}") from None
    except botocore.exceptions.BotoCoreError as error:  # no credentials, endpoint down, ...
        raise PublishError(f"cannot publish to {uri}: {error}") from None
    return "uploaded"


def _published_digest(s3: Any, bucket: str, key: str) -> str | None:
    """The sha256 (hex) the object at bucket/key was published with; `""` if it has none; None: no object."""
    import botocore.exceptions

    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchKey", "NotFound"):
            return None
        if code == "403":  # a HEAD answer has no body: ask again where the store can say why
            s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)  # raises with the store's reason
        raise
    return str(head.get("Metadata", {}).get("sha256", ""))


def _explain(error: Any, bucket: str, key: str) -> str:
    info = error.response.get("Error", {})
    code = str(info.get("Code", "?"))
    if code in ("403", "AccessDenied"):
        return (
            f"access denied: the credentials need s3:GetObject and s3:PutObject on arn:aws:s3:::{bucket}/{key}"
            " (and s3:ListBucket on the bucket)"
        )
    if code == "NoSuchBucket":
        return f"no such bucket {bucket!r}"
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return f"{code}: {info.get('Message') or f'HTTP {status}'}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: publish.py FILE s3://BUCKET/KEY", file=sys.stderr)
        return 2
    try:
        outcome = publish(Path(argv[0]), argv[1])
    except (PublishError, OSError) as error:
        print(f"publish.py: {error}", file=sys.stderr)
        return 1
    print(f"{argv[1]}: {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
