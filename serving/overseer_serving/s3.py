"""`s3://bucket/key`: botocore prepares and signs the GET, httpx streams it under the fetch deadline.

Why this split. botocore gives the standard AWS behaviour a platform team expects and that is easy to
get subtly wrong by hand: the whole credential chain (AWS_ACCESS_KEY_ID/SECRET/SESSION_TOKEN,
AWS_SHARED_CREDENTIALS_FILE + AWS_PROFILE - a Secret mounted through spec.serving.env -, web identity
for IRSA, EKS Pod Identity / container credentials, the node's role), endpoint overrides for
S3-compatible stores (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the config file), regions and SigV4.
But botocore's own body stream reads fixed-size blocks (a server that drips bytes would stretch one
block past any deadline), so the request it would send is captured just before sending (its
`before-send` event) and sent by httpx, whose reads the copy loop in fetch.py sees one by one: the
same size limit, whole-download deadline and digest check as http(s)://. botocore is imported only
when an s3:// URI is fetched; a session is made per fetch (sharing botocore's parsed service data),
so a rotated Secret or token file takes effect on the next swap.

Addressing: virtual-hosted (`bucket.s3.region.amazonaws.com`) on AWS, path-style
(`endpoint/bucket/key`) when an endpoint override is configured - what MinIO, Ceph and most
S3-compatible stores need - unless OVERSEER_S3_ADDRESSING_STYLE says `path` or `virtual`.
The key is taken literally, as the AWS CLI does: `s3://models/cat v2.pt` is the key `cat v2.pt`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from overseer_serving.errors import FetchFailed, InvalidConfig

# botocore's own bucket check (legacy and S3-compatible names included); AWS is stricter on create.
_BUCKET = re.compile(r"^[a-zA-Z0-9.\-_]{1,255}$")
_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")
_ERROR_FIELD = re.compile(r"<(Code|Message|Region|BucketName)>([^<]{0,512})</\1>")
ERROR_BODY_BYTES = 16 * 1024


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_uri(uri: str) -> S3Location:
    """`s3://bucket/key` -> S3Location; InvalidConfig naming what is wrong."""
    rest = uri[len("s3://") :] if uri.startswith("s3://") else None
    bucket, _, key = (rest or "").partition("/")
    if rest is None or not bucket or not key:
        raise InvalidConfig(f"model.uri: expected s3://BUCKET/KEY, found {uri!r}")
    if not _BUCKET.match(bucket):
        raise InvalidConfig(f"model.uri: {bucket!r} is not a valid S3 bucket name (letters, digits, '.', '-', '_')")
    if len(key.encode("utf-8")) > 1024:
        raise InvalidConfig("model.uri: the S3 key is longer than 1024 bytes")
    return S3Location(bucket, key)


@dataclass(frozen=True)
class SignedRequest:
    """A GET as botocore would send it: signed URL and headers, and where its credentials came from."""

    url: str
    headers: dict[str, str]
    endpoint: str
    region: str
    credentials: str


class _Captured(Exception):
    """Carries the prepared request out of botocore: control flow, never seen outside this module."""

    def __init__(self, request: Any) -> None:
        self.request = request


def sign_get(
    location: S3Location, *, timeout_s: float, addressing_style: str = "auto", region: str | None = None
) -> SignedRequest:
    """Resolve credentials, endpoint and region the AWS way and sign a GET of the object.

    No request is sent here (credential providers may call STS or a metadata endpoint, as any AWS
    SDK does). FetchFailed for missing or unusable credentials and configuration.
    """
    import botocore.exceptions

    try:
        return _sign(location, timeout_s, addressing_style, region)
    except botocore.exceptions.NoCredentialsError:
        raise _no_credentials(location.uri) from None
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        # a profile that does not exist, a malformed config file, a failed web-identity exchange, ...
        raise FetchFailed(
            f"cannot fetch {location.uri}: AWS configuration: {type(error).__name__}: {error}"
        ) from None


_loader: Any = None


def _session() -> Any:
    """A new session (credentials and configuration read afresh: a rotated Secret counts) sharing one
    loader of botocore's service data, which is what makes a client cost 0.1 s instead of 0.5 s."""
    global _loader  # noqa: PLW0603 - a cache of read-only data, one per process
    import botocore.loaders
    import botocore.session

    if _loader is None:
        _loader = botocore.loaders.create_loader()
    session = botocore.session.Session()
    session.register_component("data_loader", _loader)
    return session


def _sign(location: S3Location, timeout_s: float, addressing_style: str, region: str | None) -> SignedRequest:
    session = _session()
    credentials = session.get_credentials()
    if credentials is None:
        raise _no_credentials(location.uri)
    client = _client(session, timeout_s, addressing_style, region)
    client.meta.events.register("before-send.s3.GetObject", _capture)
    try:
        client.get_object(Bucket=location.bucket, Key=location.key)
    except _Captured as captured:
        request = captured.request
    else:  # pragma: no cover - the handler always raises
        raise FetchFailed(f"cannot fetch {location.uri}: the request was not prepared")
    headers = {str(k): v.decode("latin-1") if isinstance(v, bytes) else str(v) for k, v in request.headers.items()}
    source = _credential_source(credentials.method, session)
    return SignedRequest(request.url, headers, client.meta.endpoint_url, client.meta.region_name or "", source)


def _no_credentials(uri: str) -> FetchFailed:
    return FetchFailed(
        f"cannot fetch {uri}: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "or AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE - e.g. from a Secret via spec.serving.env -, "
        "or use a web identity or pod identity)"
    )


def _client(session: Any, timeout_s: float, style: str, region: str | None) -> Any:
    from botocore.config import Config

    def make(addressing: str) -> Any:
        config = Config(
            connect_timeout=min(timeout_s, 10.0),
            read_timeout=timeout_s,
            retries={"max_attempts": 1},
            signature_version="s3v4",
            s3={"addressing_style": addressing},
        )
        # AWS_REGION is what EKS injects and other SDKs read first; botocore reads AWS_DEFAULT_REGION.
        return session.create_client("s3", region_name=region or os.environ.get("AWS_REGION") or None, config=config)

    if style != "auto":
        return make(style)
    client = make("auto")
    host = (client.meta.endpoint_url or "").split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return client if host.endswith(_AWS_HOSTS) else make("path")


def _capture(request: Any, **_: Any) -> None:
    raise _Captured(request)


def _credential_source(method: str, session: Any) -> str:
    profile = session.profile or os.environ.get("AWS_PROFILE") or "default"
    names = {
        "env": "the environment (AWS_ACCESS_KEY_ID)",
        "shared-credentials-file": "the shared credentials file "
        f"{os.environ.get('AWS_SHARED_CREDENTIALS_FILE', '~/.aws/credentials')} (profile {profile})",
        "config-file": f"the AWS config file {os.environ.get('AWS_CONFIG_FILE', '~/.aws/config')} (profile {profile})",
        "assume-role-with-web-identity": "a web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)",
        "container-role": "the container credentials endpoint (EKS Pod Identity, ECS)",
        "iam-role": "the instance metadata service (the node's IAM role)",
    }
    return names.get(method, method)


def object_chunks(uri: str, timeout_s: float, *, max_bytes: int, addressing_style: str = "auto") -> Generator[bytes]:
    """The bytes of an S3 object, as network reads return them (for fetch.py's copy loop)."""
    import httpx

    from overseer_serving.fetch import stream_body

    location = parse_uri(uri)
    signed = sign_get(location, timeout_s=timeout_s, addressing_style=addressing_style)
    redirected_to: str | None = None
    for attempt in (1, 2):
        try:
            with httpx.stream("GET", signed.url, headers=signed.headers, timeout=timeout_s) as response:
                if response.status_code == 200:
                    yield from stream_body(response, uri, max_bytes)
                    return
                fields = _error_fields(response)
                region = response.headers.get("x-amz-bucket-region") or fields.get("Region")
                if attempt == 1 and region and region != signed.region and response.status_code in (301, 307, 400):
                    redirected_to = region  # the bucket lives in another region: sign for it, once
                else:
                    raise FetchFailed(_refusal(location, signed, response.status_code, fields))
        except httpx.HTTPError as error:
            raise FetchFailed(
                f"cannot fetch {uri}: the S3 endpoint {signed.endpoint} did not answer: {type(error).__name__}: {error}"
            ) from None
        signed = sign_get(location, timeout_s=timeout_s, addressing_style=addressing_style, region=redirected_to)


def _error_fields(response: Any) -> dict[str, str]:
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= ERROR_BODY_BYTES:
            break
    return {name: value for name, value in _ERROR_FIELD.findall(body[:ERROR_BODY_BYTES].decode("utf-8", "replace"))}


def _refusal(location: S3Location, signed: SignedRequest, status: int, fields: dict[str, str]) -> str:
    """What the store said, in words that point at the fix."""
    code = fields.get("Code", "")
    uri, bucket, key = location.uri, location.bucket, location.key
    creds = f"the credentials from {signed.credentials}"
    by_code = {
        "NoSuchBucket": f"no such bucket {bucket!r} at {signed.endpoint}",
        "NoSuchKey": f"no such key {key!r} in bucket {bucket!r}",
        "AccessDenied": f"access denied to {creds}: they need s3:GetObject on arn:aws:s3:::{bucket}/{key} "
        "(S3 also answers this for a missing key when they may not list the bucket)",
        "AllAccessDisabled": f"all access to bucket {bucket!r} is disabled",
        "InvalidAccessKeyId": f"the access key id of {creds} is not known to {signed.endpoint}",
        "SignatureDoesNotMatch": f"the secret key of {creds} does not match its access key id",
        "ExpiredToken": f"the session token of {creds} has expired",
        "InvalidToken": f"the session token of {creds} is not valid",
        "TokenRefreshRequired": f"the session token of {creds} has expired",
        "PermanentRedirect": f"bucket {bucket!r} is in another region; set AWS_REGION (or the endpoint) to it",
        "AuthorizationHeaderMalformed": f"bucket {bucket!r} is in another region; set AWS_REGION to it",
    }
    reason = by_code.get(code)
    if reason is None:
        message = fields.get("Message", "")
        reason = f"the store answered HTTP {status}" + (f" {code}" if code else "")
        reason += f": {message}" if message else ""
    return f"cannot fetch {uri}: {reason}"
