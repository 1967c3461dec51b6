"""An S3-compatible object store on loopback for the local cluster: moto's server, with a bucket and
two users, as a platform team would set one up. On a real cluster you have S3, MinIO or Ceph instead.

    python examples/workflow/local_s3.py --env-dir "$WORK"

Writes, in --env-dir (KEY=VALUE lines, for `set -a; source` and `kubectl create secret --from-env-file`):
  trainer.env              the training job's credentials (may write and read the bucket), endpoint, region
  serving-credentials.env  the serving pods' credentials (may only read the bucket's objects)
  store.env                endpoint and region, for the pods' ConfigMap
Then prints `ready <endpoint>` and serves until SIGINT or SIGTERM. IAM authentication is on: a
request must be signed by one of these keys and be allowed by its policy, as on AWS.
Needs moto's server (`pip install 'moto[server]'`, part of the project's test extra).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

REGION = "eu-west-1"


def policy(*statements: tuple[list[str], list[str]]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": actions, "Resource": resources} for actions, resources in statements
            ],
        }
    )


def client(endpoint: str, service: str, key_id: str, secret: str) -> Any:
    import botocore.session

    return botocore.session.Session().create_client(
        service, region_name=REGION, endpoint_url=endpoint, aws_access_key_id=key_id, aws_secret_access_key=secret
    )


def create_user(iam: Any, name: str, document: str) -> dict[str, str]:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-models", PolicyDocument=document)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def write_env(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()), encoding="utf-8")
    path.chmod(0o600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (pods reach the host's loopback)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one; see store.env)")
    parser.add_argument("--bucket", default="models")
    parser.add_argument("--env-dir", type=Path, default=Path(), help="where to write the .env files")
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = args.bucket
    # Before authentication is switched on, any key may set the store up.
    iam = client(endpoint, "iam", "AKIASETUP", "setup")
    trainer = create_user(
        iam,
        "trainer",
        policy(
            (["s3:PutObject", "s3:GetObject"], [f"arn:aws:s3:::{bucket}/*"]),
            (["s3:ListBucket"], [f"arn:aws:s3:::{bucket}"]),
        ),
    )
    serving = create_user(
        iam,
        "serving",
        policy(
            (["s3:GetObject"], [f"arn:aws:s3:::{bucket}/*"]),
            # Without ListBucket, S3 answers 403 for a missing key too; with it, the pod can say "no such key".
            (["s3:ListBucket"], [f"arn:aws:s3:::{bucket}"]),
        ),
    )
    client(endpoint, "s3", "AKIASETUP", "setup").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    # From now on every request must be signed by a known key and allowed by its policy.
    switch_on = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(switch_on, timeout=10).close()

    store = {"AWS_ENDPOINT_URL_S3": endpoint, "AWS_REGION": REGION}
    args.env_dir.mkdir(parents=True, exist_ok=True)
    write_env(args.env_dir / "trainer.env", {**trainer, **store})
    write_env(args.env_dir / "serving-credentials.env", serving)
    write_env(args.env_dir / "store.env", store)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"ready {endpoint} (bucket {bucket}; credentials in {args.env_dir.resolve()})", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
