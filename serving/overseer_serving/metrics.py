"""Prometheus metrics of the serving pod (served by BentoML's /metrics).

prometheus_client is imported when `Metrics` is built (in the worker, at service start), never at
module import: BentoML sets PROMETHEUS_MULTIPROC_DIR for its workers, and prometheus_client
chooses multi-process storage when it is first imported. Multi-process mode is also what makes
every worker's values appear in one /metrics answer.
"""

from __future__ import annotations

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16)
SWAP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0)


class Metrics:
    def __init__(self, worker: int) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.worker = str(worker)
        self.request_seconds = Histogram(
            "overseer_request_duration_seconds",
            "Latency of detection requests, by endpoint and model version.",
            ["endpoint", "model_version"],
            buckets=LATENCY_BUCKETS,
        )
        self.requests = Counter(
            "overseer_requests",
            "Detection requests (images, for the batch endpoint) by endpoint, model and HTTP status.",
            ["endpoint", "model_name", "model_version", "code"],
        )
        self.batch_size = Histogram(
            "overseer_batch_size",
            "Images per call of the /detect/batch function: the requests BentoML's adaptive batching merged.",
            buckets=BATCH_BUCKETS,
        )
        self.swaps = Counter(
            "overseer_model_swaps",
            "Completed in-place model swaps, by the model swapped in.",
            ["model_name", "model_version"],
        )
        self.swap_seconds = Histogram(
            "overseer_model_swap_duration_seconds",
            "Time from accepted PUT /admin/model to the new model serving (fetch, verify, load, warm-up).",
            buckets=SWAP_BUCKETS,
        )
        self.swap_failures = Counter(
            "overseer_model_swap_failures",
            "Rejected or failed model swaps, by reason (the error.reason of the answer).",
            ["reason"],
        )
        self.model_info = Gauge(
            "overseer_model_info",
            "1 for the model each worker serves now (0 for models it served before).",
            ["worker", "name", "version", "digest"],
            multiprocess_mode="livemax",
        )

    def serving(self, new: dict[str, str], old: dict[str, str] | None) -> None:
        if old is not None:
            self.model_info.labels(self.worker, old["name"], old["version"], old["digest"]).set(0)
        self.model_info.labels(self.worker, new["name"], new["version"], new["digest"]).set(1)

    def batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def request(
        self, endpoint: str, identity: dict[str, str] | None, code: int, seconds: float | None, n: int = 1
    ) -> None:
        name = identity["name"] if identity else ""
        version = identity["version"] if identity else ""
        self.requests.labels(endpoint, name, version, str(code)).inc(n)
        if seconds is not None:
            self.request_seconds.labels(endpoint, version).observe(seconds)
