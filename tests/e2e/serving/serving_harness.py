"""Run `overseer serve` as a real process tree on loopback, and stop it without leaving orphans."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overseer_devtools import localserver, shapes
from overseer_devtools.localserver import OVERSEER, LocalServer, alive, clean_environment, free_port
from overseer_devtools.scoring import Match, match
from overseer_devtools.shapes import CLASSES, Scene, Shape

__all__ = [
    "OVERSEER",
    "START_TIMEOUT",
    "TOKEN",
    "ModelFile",
    "Server",
    "alive",
    "assert_sees",
    "file_server",
    "free_port",
    "held_out_picture",
    "loopback_http",
    "metric_count",
    "metric_value",
    "running",
    "schema_snapshot",
    "serve_env",
    "start_server",
    "until",
    "with_classes_swapped",
]

TOKEN = "e2e-admin-token"
START_TIMEOUT = 120.0  # the machine may be busy (a Go build runs beside the tests)


def schema_snapshot(version: int = 1) -> dict[str, Any]:
    return {
        "name": "object-detector",
        "version": version,
        "labels": {"type": "object", "required": ["owner"], "properties": {"owner": {"type": "string"}}},
        "metadata": {"type": "object", "properties": {"f1": {"type": "number", "minimum": 0, "maximum": 1}}},
        "customObjects": {
            "type": "object",
            "required": ["conf"],
            "properties": {
                # the shapes detectors were trained on 160x160 pictures, and are served at that size
                "resize_resolution": {"type": "integer", "default": 160},
                "conf": {"type": "number", "minimum": 0, "maximum": 1},
                "max_det": {"type": "integer", "default": 20},
                "multi_label": {"type": "boolean"},
            },
        },
    }


@dataclass(frozen=True)
class ModelFile:
    path: Path
    digest: str
    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"file://{self.path}"

    def document(self, **overrides: Any) -> dict[str, Any]:
        model = {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "digest": self.digest,
            "labels": {"owner": "ml-team"},
            "metadata": {"f1": 0.8},
            "customObjects": {"conf": 0.25},
        }
        model.update(overrides)
        return {"model": model, "schema": schema_snapshot()}


# Shapes of 24-48 px: well inside what the trained models learnt (16-48 px), so that a model
# retrained on another machine finds them too. Quality over the whole range, the smallest shapes
# included, is what benchmarks/bench_serving.py measures (mAP50 on held-out pictures).
SHAPE_SIDES = (24, 48)


def held_out_picture(index: int, **drawing: Any) -> Scene:
    """Held-out picture `index` (never trained on) of the e2e tests: 160x160, 1-3 shapes."""
    return shapes.scene(index, side=SHAPE_SIDES, **drawing)


def assert_sees(detections: list[dict[str, Any]], scene: Scene, *, confident: float = 0.5) -> Match:
    """Every drawn shape is found (its class, IoU >= 0.5), and nothing else with `confident` or
    more: the answer a user of a good detector expects. Returns the match."""
    result = match(detections, scene.shapes)
    confident_extra = [d for d in result.extra if d["confidence"] >= confident]
    assert not result.missed and not confident_extra, f"detections vs what was drawn:\n{result.describe()}"
    return result


def with_classes_swapped(scene: Scene) -> tuple[Shape, ...]:
    """What a detector that mistakes each class for the other would be right about."""
    other = {CLASSES[0]: CLASSES[1], CLASSES[1]: CLASSES[0]}
    return tuple(Shape(other[s.kind], s.box) for s in scene.shapes)


Server = LocalServer  # one implementation, shared with benchmarks/bench_serving.py


def server_settings(state_root: Path, **extra: str) -> dict[str, str]:
    """The settings of a server under test: JSON logs, weights cached under `state_root`."""
    return {"OVERSEER_LOG_FORMAT": "json", "OVERSEER_CACHE_DIR": str(state_root / "cache"), **extra}


def serve_env(state_root: Path, **extra: str) -> dict[str, str]:
    """The whole environment for an `overseer serve` run under test (no inherited OVERSEER_ settings)."""
    return clean_environment(**server_settings(state_root, **extra))


def start_server(
    tmp: Path,
    document: dict[str, Any],
    *,
    host: str = "127.0.0.1",
    workers: int = 1,
    wait: bool = True,
    env: dict[str, str] | None = None,
) -> Server:
    settings = server_settings(tmp, OVERSEER_WORKERS=str(workers), **(env or {}))
    server = Server.start(tmp, document, token=TOKEN, host=host, env=settings)
    if wait:
        try:
            server.wait_ready(START_TIMEOUT)
        except BaseException:
            server.kill_leftovers()
            raise
    return server


@contextlib.contextmanager
def running(
    tmp: Path, document: dict[str, Any], *, host: str = "127.0.0.1", workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """A ready server under test for the block: localserver.running with this tier's settings."""
    settings = server_settings(tmp, OVERSEER_WORKERS=str(workers), **(env or {}))
    with localserver.running(tmp, document, token=TOKEN, host=host, env=settings) as server:
        yield server


@contextlib.contextmanager
def loopback_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run `handler` on a free loopback port for the block; yields the base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@contextlib.contextmanager
def file_server(root: Path) -> Iterator[str]:
    """A plain HTTP server on loopback serving `root`, for http:// weights URIs."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with loopback_http(Quiet) as url:
        yield url


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """Sum of the samples of `name` whose labels include `labels`; None when no such series is
    exported at all (so that `== 0.0` asserts a series that exists and is zero)."""
    total: float | None = None
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total = (total or 0.0) + float(value)
    return total


def metric_count(text: str, name: str, **labels: str) -> float:
    """A counter's total: 0 before its first increment (a labelled counter is not exported until then)."""
    return metric_value(text, name, **labels) or 0.0


def until(deadline_s: float) -> float:
    return time.monotonic() + deadline_s
