"""The operator's Prometheus metrics and their /metrics endpoint (aiohttp, its own port).

A registry of its own (not the process-global one), so two operators in one test process, or a
restart in the same interpreter, never collide.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.admission_requests = Counter(
            "overseer_admission_requests",
            "Admission reviews answered, by webhook, kind, operation and result (allowed, denied, error).",
            ["webhook", "kind", "operation", "result"],
            registry=self.registry,
        )
        self.admission_duration = Histogram(
            "overseer_admission_duration_seconds",
            "Time to answer one admission review (lookups and checks), by webhook and operation.",
            ["webhook", "operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.reconciles = Counter(
            "overseer_reconciles",
            "Reconciliations, by kind and result (ok, blocked, error).",
            ["kind", "result"],
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "overseer_reconcile_errors",
            "Reconciliations that failed and will be retried, by kind and reason.",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "overseer_reconcile_duration_seconds",
            "Time of one reconciliation, by kind.",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.info = Gauge("overseer_operator_info", "The operator's version.", ["version"], registry=self.registry)
        self.info.labels(version=version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    @contextlib.asynccontextmanager
    async def serving(self, addr: str, port: int) -> AsyncIterator[int]:
        """Serve GET /metrics for the block; yields the bound port."""

        async def metrics(_: web.Request) -> web.Response:
            response = web.Response(body=self.render())
            response.headers["Content-Type"] = CONTENT_TYPE_LATEST
            return response

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, addr, port)
        await site.start()
        try:
            server: Any = site._server
            sockets = server.sockets if server is not None else []
            yield int(sockets[0].getsockname()[1]) if sockets else port
        finally:
            await runner.cleanup()


__all__ = ["Metrics"]
