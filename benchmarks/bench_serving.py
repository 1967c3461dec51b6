"""Serving benchmark: in-place swap vs restart, and /detect overhead vs a raw predict loop.

    .venv/bin/python benchmarks/bench_serving.py [--requests 40] [--swaps 3] [--restarts 2]

(a) swap: wall time of PUT /admin/model (fetch, verify, load, warm-up, smoke test, switch) on a
    running server, versus restart-to-ready: `overseer serve` started from nothing until /readyz
    answers 200, for the same model, in the same run. Restart excludes stopping the old process,
    so the ratio is conservative.
(b) overhead: /detect p50 latency and throughput versus a loop of PIL decode + model.predict over
    the same JPEG images with the same predict arguments, in this process; the server is measured
    with 1 client (latency and throughput) and with 4 concurrent clients (throughput).
(c) adaptive batching: throughput of 8 concurrent clients sending one image per request to
    /detect, versus the same on /detect/batch, where BentoML merges concurrent requests into one
    predict call; the ratio is from the same run and server.
(d) quality: mAP50 of /detect on held-out generated pictures (never trained on) next to raw
    model.predict on the same pictures with the same arguments (conf 0.001, imgsz 160), and how
    many answers are identical box for box: serving must not change what the model sees.

Everything runs on 127.0.0.1 with the YOLOv8n detectors trained by `make models` (shapes-v1 and
shapes-v2, from the cache; made first if missing).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from overseer_devtools import shapes
from overseer_devtools.localserver import LocalServer
from overseer_devtools.models import IMGSZ, shapes_model
from overseer_devtools.scoring import from_results, map50
from PIL import Image

TOKEN = "bench-token"
SCHEMA = {
    "name": "object-detector",
    "version": 1,
    "labels": {"type": "object"},
    "metadata": {"type": "object"},
    "customObjects": {"type": "object", "properties": {"resize_resolution": {"type": "integer", "default": 640}}},
}
CUSTOM_OBJECTS = {"resize_resolution": 640, "conf": 0.25, "max_det": 100}
# mAP needs the whole precision-recall curve: a low threshold and room for every box.
QUALITY_OBJECTS = {"resize_resolution": IMGSZ, "conf": 0.001, "max_det": 300}


def document(path: Path, digest: str, version: str, custom_objects: dict[str, Any] = CUSTOM_OBJECTS) -> dict[str, Any]:
    model = {"name": "bench", "version": version, "uri": f"file://{path}", "digest": digest}
    return {"model": {**model, "customObjects": custom_objects}, "schema": SCHEMA}


def stop(server: LocalServer) -> None:
    try:
        server.stop()
    except BaseException:
        server.kill_leftovers()
        raise


def jpegs(n: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def raw_loop(weights: Path, images: list[bytes], requests: int) -> tuple[list[float], float]:
    from ultralytics import YOLO  # type: ignore[attr-defined]

    model = YOLO(str(weights), task="detect")
    kwargs = {"imgsz": 640, "conf": 0.25, "max_det": 100, "verbose": False}
    for data in images[:2]:
        model.predict(Image.open(io.BytesIO(data)).convert("RGB"), **kwargs)  # warm-up, as the server does
    latencies = []
    started = time.perf_counter()
    for i in range(requests):
        t = time.perf_counter()
        model.predict(Image.open(io.BytesIO(images[i % len(images)])).convert("RGB"), **kwargs)
        latencies.append(time.perf_counter() - t)
    return latencies, requests / (time.perf_counter() - started)


def served(
    url: str, images: list[bytes], requests: int, clients: int, path: str = "/detect"
) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    started: list[float] = []
    barrier = threading.Barrier(clients, action=lambda: started.append(time.perf_counter()))
    field = "images" if path == "/detect/batch" else "image"

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            c.post(path, files={field: ("w.jpg", images[0], "image/jpeg")}).raise_for_status()  # connect
            barrier.wait()
            for i in counter:
                t = time.perf_counter()
                r = c.post(path, files={field: ("x.jpg", images[i % len(images)], "image/jpeg")})
                r.raise_for_status()
                if path == "/detect/batch" and "detections" not in r.json()[0]:
                    raise RuntimeError(f"batch item failed: {r.text}")
                with lock:
                    latencies.append(time.perf_counter() - t)

    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    return latencies, requests / (time.perf_counter() - started[0])


def batching(url: str, images: list[bytes], requests: int) -> tuple[float, float]:
    """(c): 8 clients on /detect, then on /detect/batch; a first batch run trains BentoML's optimizer."""
    served(url, images, 16, clients=8, path="/detect/batch")
    _, detect_tput = served(url, images, requests, clients=8)
    _, batch_tput = served(url, images, requests, clients=8, path="/detect/batch")
    return detect_tput, batch_tput


def quality(url: str, weights: Path, pictures: list[shapes.Scene]) -> tuple[float, float, int]:
    """(d): (mAP50 of /detect, mAP50 of raw predict, answers identical box for box)."""
    served = []
    with httpx.Client(base_url=url, timeout=60) as c:
        for p in pictures:
            r = c.post("/detect", files={"image": ("p.png", p.png(), "image/png")})
            r.raise_for_status()
            served.append(r.json()["detections"])
    from ultralytics import YOLO  # type: ignore[attr-defined]

    model = YOLO(str(weights), task="detect")
    kwargs = {"imgsz": QUALITY_OBJECTS["resize_resolution"], "conf": 0.001, "max_det": 300, "verbose": False}
    raw = [from_results(model.predict(p.image, **kwargs)[0]) for p in pictures]
    truth = [p.shapes for p in pictures]
    return map50(served, truth), map50(raw, truth), sum(a == b for a, b in zip(served, raw, strict=True))


def swap_times(server: LocalServer, docs: dict[str, dict[str, Any]], swaps: int) -> list[float]:
    """(a): seconds of each PUT of model b, swapping a -> b -> a ... (ends on a)."""
    times = []
    with server.admin() as c:
        for i in range(swaps * 2):
            target = docs["b"] if i % 2 == 0 else docs["a"]
            t = time.perf_counter()
            answer = c.put("/admin/model", json=target)
            elapsed = time.perf_counter() - t
            answer.raise_for_status()
            if target is docs["b"]:
                times.append(elapsed)
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--swaps", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--pictures", type=int, default=64, help="held-out pictures for (d)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp_name:
        tmp = Path(tmp_name)
        v1, v2 = shapes_model("shapes-v1"), shapes_model("shapes-v2")
        docs = {"a": document(v1.path, v1.digest, "1"), "b": document(v2.path, v2.digest, "2")}
        pictures = shapes.held_out(args.pictures)
        images = jpegs(8)
        print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

        # (a) restart-to-ready, then swaps on the last server
        restarts = []
        for i in range(args.restarts):
            server = LocalServer.start(tmp / f"restart{i}", docs["b"], token=TOKEN)
            try:
                restarts.append(server.wait_ready())
            finally:
                stop(server)
        server = LocalServer.start(tmp / "swap", docs["a"], token=TOKEN)
        try:
            server.wait_ready()
            swaps = swap_times(server, docs, args.swaps)
            # (b) overhead: the swaps ended on model a, the model the raw loop uses
            served_1, served_tput_1 = served(server.url, images, args.requests, clients=1)
            _, served_tput_4 = served(server.url, images, args.requests, clients=4)
            detect_tput_8, batch_tput_8 = batching(server.url, images, args.requests)
            scores = {}
            for name, model in (("shapes-v1", v1), ("shapes-v2", v2)):
                with server.admin() as c:
                    c.put(
                        "/admin/model", json=document(model.path, model.digest, name, QUALITY_OBJECTS)
                    ).raise_for_status()
                scores[name] = quality(server.url, model.path, pictures)
        finally:
            stop(server)
        raw, raw_tput = raw_loop(v1.path, images, args.requests)

    swap_s, restart_s = statistics.median(swaps), statistics.median(restarts)
    raw_p50, served_p50 = statistics.median(raw), statistics.median(served_1)
    print("\n(a) swap vs restart (same model, median)")
    print(f"  swap (PUT /admin/model)  {ms(swap_s):>9}  n={len(swaps)}  all (s): {[round(s, 2) for s in swaps]}")
    print(
        f"  restart-to-ready         {ms(restart_s):>9}  n={len(restarts)}  all (s): {[round(s, 2) for s in restarts]}"
    )
    print(f"  restart / swap           {restart_s / swap_s:>8.1f}x  (aim: >= 10x)")
    print("\n(b) /detect vs raw model.predict (640x480 JPEG, imgsz 640)")
    print(f"  raw p50 {ms(raw_p50)}, throughput {raw_tput:.2f} img/s")
    print(f"  /detect p50 {ms(served_p50)} (1 client), throughput {served_tput_1:.2f} img/s (1 client)")
    print(f"  /detect throughput {served_tput_4:.2f} img/s (4 clients)")
    print(
        f"  p50 ratio raw/served {raw_p50 / served_p50:.2f}; throughput ratio served/raw: "
        f"{served_tput_1 / raw_tput:.2f} (1 client), {served_tput_4 / raw_tput:.2f} (4 clients)  (aim: >= 0.7)"
    )
    report_batching(detect_tput_8, batch_tput_8)
    return report_quality(scores, len(pictures))


def report_batching(detect_tput: float, batch_tput: float) -> None:
    print("\n(c) adaptive batching: 8 concurrent clients, one image per request")
    print(f"  /detect        {detect_tput:.2f} img/s")
    print(f"  /detect/batch  {batch_tput:.2f} img/s (BentoML merges concurrent requests)")
    print(f"  batch / detect {batch_tput / detect_tput:.2f}x")


def report_quality(scores: dict[str, tuple[float, float, int]], pictures: int) -> int:
    print(f"\n(d) quality on {pictures} held-out pictures (mAP50; conf 0.001, imgsz {IMGSZ})")
    mismatch = False
    for name, (served_map, raw_map, identical) in scores.items():
        print(
            f"  {name}: /detect {served_map:.4f}   raw model.predict {raw_map:.4f}   "
            f"identical answers, box for box: {identical} of {pictures}"
        )
        mismatch |= served_map != raw_map
    if mismatch:
        print("  MISMATCH: the served answers differ from the model's own", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
