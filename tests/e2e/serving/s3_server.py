"""A real S3-compatible server on loopback for the s3:// tests: moto's standalone server, in a thread
of the test process (stopped in teardown, so nothing outlives the run), with IAM authentication on.

    with S3Server.running() as store:
        store.put("models", "cat/v1.pt", data)
        env = store.env(store.reader)   # what a pod gets from spec.serving.env
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

REGION = "eu-west-1"
READ_MODELS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::models/*"}],
}
EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class AccessKey:
    user: str
    key_id: str
    secret: str


class S3Server:
    def __init__(self, server: Any, endpoint: str) -> None:
        self._server = server
        self.endpoint = endpoint
        self.admin = self._user("admin", EVERYTHING)
        self.reader = self._user("reader", READ_MODELS)  # may read objects of bucket `models`
        self.outsider = self._user("outsider", None)  # authenticated, no permission at all

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[S3Server]:
        from moto import settings
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            # moto keeps its state per process, not per server: start from an empty store
            httpx.post(f"http://{host}:{port}/moto-api/reset").raise_for_status()
            store = cls(server, f"http://{host}:{port}")
            # From now on every request must be signed by a known key with the right to do it.
            httpx.post(f"{store.endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
            store.client(store.admin).create_bucket(
                Bucket="models", CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            yield store
        finally:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"http://{host}:{port}/moto-api/reset-auth", content=b"inf")
            settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
            server.stop()

    def client(self, key: AccessKey | None = None, service: str = "s3") -> Any:
        import botocore.session

        key = key or self.admin
        return botocore.session.Session().create_client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=key.key_id,
            aws_secret_access_key=key.secret,
        )

    def _user(self, name: str, policy: Mapping[str, Any] | None) -> AccessKey:
        iam = self.client(AccessKey("setup", "AKIASETUP", "setup"), "iam")  # before auth is switched on
        iam.create_user(UserName=name)
        if policy is not None:
            iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        created = iam.create_access_key(UserName=name)["AccessKey"]
        return AccessKey(name, created["AccessKeyId"], created["SecretAccessKey"])

    def put(self, bucket: str, key: str, data: bytes) -> str:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"

    def env(self, key: AccessKey, **extra: str) -> dict[str, str]:
        """The environment of a serving process that reads this store with `key` (and nothing else)."""
        return {
            "AWS_ACCESS_KEY_ID": key.key_id,
            "AWS_SECRET_ACCESS_KEY": key.secret,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
            **extra,
        }
