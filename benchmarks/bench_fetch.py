"""Weights fetch benchmark: s3:// (botocore signs, httpx streams) vs http:// vs file://, and the cost
of botocore itself - the figures behind the choice of client documented in docs/serving.md.

    .venv/bin/python benchmarks/bench_fetch.py [--mib 32] [--rounds 5]

(a) cold costs in a fresh interpreter: `import botocore.session`, the first signed request (a
    session, an S3 client, credentials from the environment), and `import httpx` beside them;
(b) one fetch of the same random file into an empty cache (hashing and writing included), median
    of --rounds, from a local file, from `python -m http.server`, and from moto's S3 server (each
    server its own process on 127.0.0.1), with the s3:// / http:// ratio from the same run;
(c) signing alone (what s3:// adds before the first byte), median over 20 signatures.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from overseer_serving import s3
from overseer_serving.fetch import fetch

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(command: list[str], url: str) -> Iterator[None]:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{command[0]} did not start") from None
                time.sleep(0.1)  # poll interval, bounded by the deadline above
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def cold_costs() -> tuple[float, float, float]:
    code = """
import time
t0 = time.perf_counter(); import httpx; t1 = time.perf_counter()
import botocore.session; t2 = time.perf_counter()
from overseer_serving import s3
s3.sign_get(s3.parse_uri("s3://bucket/key.pt"), timeout_s=10); t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIABENCH", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": REGION}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    httpx_s, botocore_s, first_sign_s = (float(x) for x in out.split())
    return httpx_s, botocore_s, first_sign_s


def median_fetch(uri: str, digest: str, rounds: int, size: int) -> float:
    times = []
    for _ in range(rounds):
        cache = Path(tempfile.mkdtemp(prefix="bench-fetch-"))
        try:
            started = time.perf_counter()
            fetch(uri, digest, cache, timeout_s=120, max_bytes=size + 1)
            times.append(time.perf_counter() - started)
        finally:
            shutil.rmtree(cache)
    return statistics.median(times)


def timed(call: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=32, help="size of the weights file (a YOLOv8n .pt is 6.5 MiB)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024

    httpx_s, botocore_s, first_sign_s = cold_costs()
    print("(a) cold costs in a fresh interpreter")
    print(f"  import httpx {httpx_s * 1000:.0f} ms, import botocore.session {botocore_s * 1000:.0f} ms, "
          f"first signed GET (session + client + credentials) {first_sign_s * 1000:.0f} ms")

    root = Path(tempfile.mkdtemp(prefix="bench-fetch-src-"))
    try:
        data = os.urandom(size)
        (root / "w.pt").write_bytes(data)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        http_port, s3_port = free_port(), free_port()
        http_server = [sys.executable, "-m", "http.server", str(http_port), "--bind", "127.0.0.1", "-d", str(root)]
        moto_server = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(s3_port)]
        endpoint = f"http://127.0.0.1:{s3_port}"
        os.environ.update(
            AWS_ACCESS_KEY_ID="AKIABENCH", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION=REGION,
            AWS_ENDPOINT_URL_S3=endpoint, AWS_EC2_METADATA_DISABLED="true",
        )
        with process(http_server, f"http://127.0.0.1:{http_port}/"), process(moto_server, endpoint):
            import botocore.session

            client = botocore.session.Session().create_client("s3", endpoint_url=endpoint, region_name=REGION)
            client.create_bucket(Bucket="models")
            client.put_object(Bucket="models", Key="w.pt", Body=data)
            file_s = median_fetch(f"file://{root / 'w.pt'}", digest, args.rounds, size)
            http_s = median_fetch(f"http://127.0.0.1:{http_port}/w.pt", digest, args.rounds, size)
            s3_s = median_fetch("s3://models/w.pt", digest, args.rounds, size)
            sign_s = timed(lambda: s3.sign_get(s3.parse_uri("s3://models/w.pt"), timeout_s=10), 20)
        print(f"(b) one fetch of {args.mib} MiB into an empty cache, median of {args.rounds}")
        for name, seconds in (("file://", file_s), ("http://", http_s), ("s3://", s3_s)):
            print(f"  {name:8} {seconds * 1000:7.0f} ms  {args.mib / seconds:6.0f} MiB/s")
        print(f"  s3:// / http:// = {s3_s / http_s:.2f}x")
        print(f"(c) signing one GET (session, client, credentials; no request): {sign_s * 1000:.0f} ms median")
    finally:
        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
