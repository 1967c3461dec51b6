"""Everything the handlers share, built once at start-up (Kopf's startup activity) and closed at
cleanup: settings, the API client, metrics, the admission service, the reconciler, and the
background tasks (metrics endpoint, child watches, resync)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kopf

from overseer.operator import webhooks
from overseer.operator.admission_service import AdmissionService
from overseer.operator.kube import KubeClient, api_path, load_credentials
from overseer.operator.metrics import Metrics
from overseer.operator.reconcile import Reconciler
from overseer.operator.settings import OperatorSettings

log = logging.getLogger("overseer.operator")
T = TypeVar("T")


@dataclass
class Runtime:
    settings: OperatorSettings
    kube: KubeClient
    metrics: Metrics
    admission: AdmissionService
    reconciler: Reconciler
    executor: ThreadPoolExecutor
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    metrics_port: int | None = None

    @classmethod
    async def start(cls, settings: OperatorSettings) -> Runtime:
        credentials = await asyncio.to_thread(load_credentials, settings.kubeconfig)
        kube = KubeClient(credentials, timeout_s=settings.api_timeout_s)
        metrics = Metrics(settings.version)
        # Admission checks are CPU-bound: two threads keep one slow review from queueing the rest.
        executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="overseer-checks")

        async def run_check(fn: Any, *args: Any, **kwargs: Any) -> Any:
            return await asyncio.get_running_loop().run_in_executor(executor, functools.partial(fn, *args, **kwargs))

        runtime = cls(
            settings=settings,
            kube=kube,
            metrics=metrics,
            admission=AdmissionService(kube, settings, metrics, executor),
            reconciler=Reconciler(kube, settings, metrics, run_check),
            executor=executor,
        )
        if settings.metrics_port:
            started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            runtime.tasks.append(asyncio.create_task(runtime._serve_metrics(started), name="metrics endpoint"))
            runtime.metrics_port = await started
        runtime.tasks.append(asyncio.create_task(runtime.reconciler.run(), name="reconciler background"))
        log.info(
            "schema-overseer operator %s started (namespaces: %s, webhooks: %s)",
            settings.version,
            ", ".join(settings.namespaces) or "all",
            settings.webhook_mode,
        )
        return runtime

    async def _serve_metrics(self, started: asyncio.Future[int]) -> None:
        try:
            async with self.metrics.serving(self.settings.metrics_addr, self.settings.metrics_port) as port:
                started.set_result(port)
                await asyncio.Event().wait()
        except Exception as error:
            if not started.done():
                started.set_exception(error)
            raise

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.kube.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- webhooks ------------------------------------------------------------------------------------

    async def webhook_server(self) -> kopf.WebhookServer | None:
        """The HTTPS server Kopf routes reviews through; in url mode, the certificates are made
        here and the configurations registered, so the API server calls this very process."""
        settings = self.settings
        if settings.webhook_mode == "none":
            return None
        files = webhooks.CertFiles.in_dir(settings.webhook_cert_dir)
        if settings.webhook_mode == "url":
            files = await asyncio.to_thread(
                webhooks.ensure_certificates, settings.webhook_cert_dir, ip_sans=[settings.webhook_host]
            )
            await self.register_webhooks(files)
        elif not (files.cert.exists() and files.key.exists()):
            raise kopf.PermanentError(
                f"no webhook certificate in {settings.webhook_cert_dir} (tls.crt, tls.key): mount the chart's "
                "webhook Secret there, or set OVERSEER_WEBHOOK_MODE=url (local) or none"
            )
        return kopf.WebhookServer(
            addr=settings.webhook_addr,
            port=settings.webhook_port,
            certfile=str(files.cert),
            pkeyfile=str(files.key),
            cafile=str(files.ca) if files.ca.exists() else None,
        )

    async def register_webhooks(self, files: webhooks.CertFiles) -> None:
        settings = self.settings
        ca_bundle = base64.b64encode(files.ca.read_bytes()).decode("ascii")
        client_config = webhooks.url_client_config(settings.webhook_host, settings.webhook_port, ca_bundle)
        for config in webhooks.configurations(
            client_config,
            name=settings.webhook_configuration_name,
            labels={"app.kubernetes.io/managed-by": "schema-overseer"},
            timeout_seconds=settings.webhook_timeout_seconds,
        ):
            plural = config["kind"].lower() + "s"
            path = api_path("admissionregistration.k8s.io/v1", plural, name=config["metadata"]["name"])
            await self.kube.apply(path, config)
        log.info(
            "webhooks registered: %s (https://%s:%d)",
            settings.webhook_configuration_name,
            settings.webhook_host,
            settings.webhook_port,
        )


__all__ = ["Runtime"]
