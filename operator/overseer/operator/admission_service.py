"""The I/O shell around admission.py: look up what a decision needs, run the checks off the event
loop with a deadline, count and time every answer, and never let an unexpected error (or its
traceback) reach a user.

Lookups: ModelSchemas come from Kopf's in-memory index (no API call on the hot path), with a live
read when the index does not have the schema or the version yet (a schema and a deployment
applied in one `kubectl apply` arrive milliseconds apart). Deletion checks list the namespace's
ModelDeployments live: they are rare and must not miss a reference.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from overseer.api.v1alpha1 import API_VERSION
from overseer.operator import admission
from overseer.operator.admission import Review
from overseer.operator.kube import KubeClient, KubeError, api_path
from overseer.operator.metrics import Metrics
from overseer.operator.settings import OperatorSettings
from overseer.operator.webhooks import DEFAULT_DEPLOYMENT, VALIDATE_DEPLOYMENT, VALIDATE_SCHEMA

log = logging.getLogger("overseer.operator.admission")
T = TypeVar("T")

SchemaLookup = Callable[[str, str], Mapping[str, Any] | None]
"""(namespace, name) -> the indexed ModelSchema body, or None."""


INLINE_CHECK_BYTES = 16 * 1024


class CheckTimeout(Exception):
    pass


def _size(*objects: Any) -> int | None:
    """Bytes of JSON the check reads; None when not JSON, or nested too deep for `json` (the
    check, off the event loop, then says what is wrong: its walks are bounded in depth)."""
    try:
        return sum(len(json.dumps(obj, separators=(",", ":"))) for obj in objects if obj is not None)
    except (TypeError, ValueError, RecursionError):
        return None


class AdmissionService:
    def __init__(
        self,
        kube: KubeClient,
        settings: OperatorSettings,
        metrics: Metrics,
        executor: ThreadPoolExecutor,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.executor = executor

    # --- ModelDeployment -------------------------------------------------------------------------

    async def default_deployment(
        self,
        operation: str,
        body: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        namespace: str,
        lookup: SchemaLookup,
    ) -> Review:
        async def decide() -> Review:
            if not admission.writes_a_spec(operation, old, body):
                return Review.allow()
            schema = await self._schema(namespace, body, lookup)
            patch = await self._checked(_size(body, schema), admission.default_deployment, body, schema)
            return Review.allow(patch=patch)

        return await self._answer(DEFAULT_DEPLOYMENT.handler_id, "ModelDeployment", operation, decide)

    async def validate_deployment(
        self,
        operation: str,
        body: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        namespace: str,
        lookup: SchemaLookup,
        names: Callable[[], Iterable[str]] = tuple,
    ) -> Review:
        async def decide() -> Review:
            if not admission.writes_a_spec(operation, old, body):
                return Review.allow()
            schema = await self._schema(namespace, body, lookup)
            known = () if schema is not None else tuple(await self._schema_names(namespace, names))
            return await self._checked(
                _size(body, schema),
                functools.partial(admission.review_deployment, namespace=namespace, schemas_in_namespace=known),
                operation,
                body,
                old,
                schema,
            )

        return await self._answer(VALIDATE_DEPLOYMENT.handler_id, "ModelDeployment", operation, decide)

    async def _schema(self, namespace: str, body: Mapping[str, Any], lookup: SchemaLookup) -> Mapping[str, Any] | None:
        ref = admission.spec_of(body).get("schemaRef")
        if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str) or not ref["name"]:
            return None
        name = ref["name"]
        indexed = lookup(namespace, name)
        if indexed is not None and admission.schema_version(indexed, ref.get("version")) is not None:
            return indexed
        # Not (yet) in the index, or an older copy: ask the API server, the source of truth.
        live = await self.kube.get(api_path(API_VERSION, "modelschemas", namespace, name))
        return live if live is not None else indexed

    async def _schema_names(self, namespace: str, names: Callable[[], Iterable[str]]) -> list[str]:
        indexed = list(names())
        if indexed:
            return indexed
        items = await self.kube.list(api_path(API_VERSION, "modelschemas", namespace))
        return [str(item["metadata"]["name"]) for item in items]

    # --- ModelSchema ----------------------------------------------------------------------------

    async def validate_schema(
        self,
        operation: str,
        body: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        namespace: str,
    ) -> Review:
        async def decide() -> Review:
            if operation == "DELETE":
                target = old or body
                usage = await self.usage(namespace, str(target["metadata"]["name"]))
                if not usage:
                    return Review.allow()
                terminating = await self._namespace_terminating(namespace)
                return admission.review_schema_delete(target, usage, namespace_terminating=terminating)
            if not admission.writes_a_spec(operation, old, body):
                return Review.allow()
            usage = await self.usage(namespace, str(body["metadata"]["name"])) if operation == "UPDATE" else {}
            # Compatibility walks over every version: always off the event loop.
            return await self._checked(None, admission.review_schema, operation, body, old, usage)

        return await self._answer(VALIDATE_SCHEMA.handler_id, "ModelSchema", operation, decide)

    async def usage(self, namespace: str, schema_name: str) -> dict[int, list[str]]:
        items = await self.kube.list(api_path(API_VERSION, "modeldeployments", namespace))
        return admission.schema_usage(schema_name, items)

    async def _namespace_terminating(self, namespace: str) -> bool:
        ns = await self.kube.get(api_path("v1", "namespaces", name=namespace))
        if ns is None:
            return True
        return bool(ns["metadata"].get("deletionTimestamp")) or (ns.get("status") or {}).get("phase") == "Terminating"

    # --- shared -----------------------------------------------------------------------------------

    async def _checked(self, size: int | None, fn: Callable[..., T], *args: Any) -> T:
        """Run a check. A small one (`size` in bytes, the common case) runs inline: it takes well
        under a millisecond, and handing it to a thread costs more than that in GIL hand-offs
        (measured: benchmarks/bench_admission.py). A big or unknown one runs in the admission
        threads with a deadline, so the event loop keeps answering other reviews, the liveness
        probe and the watches meanwhile."""
        if size is not None and size <= INLINE_CHECK_BYTES:
            return fn(*args)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, functools.partial(fn, *args))
        try:
            return await asyncio.wait_for(future, self.settings.admission_check_timeout_s)
        except TimeoutError:
            raise CheckTimeout from None

    async def _answer(self, webhook: str, kind: str, operation: str, decide: Callable[[], Any]) -> Review:
        started = time.perf_counter()
        try:
            review: Review = await decide()
            result = "allowed" if review.allowed else "denied"
        except CheckTimeout:
            review = Review(
                False,
                f"the checks did not finish within {self.settings.admission_check_timeout_s:g}s; "
                "the schema may be too complex - nothing was changed",
                503,
            )
            result = "error"
            log.warning("admission %s %s: checks exceeded the deadline", kind, operation)
        except KubeError as error:
            review = Review(
                False,
                f"the operator could not read what this check needs from the API server ({error.reason}); "
                "nothing was changed - retry",
                503,
            )
            result = "error"
            log.warning("admission %s %s: API error: %s", kind, operation, error)
        except Exception:
            # The traceback goes to the operator's log, never into the user's answer.
            log.exception("admission %s %s: unexpected error", kind, operation)
            review = Review(
                False,
                "internal error in the schema-overseer operator while checking this object "
                "(details are in the operator's log); nothing was changed",
                500,
            )
            result = "error"
        self.metrics.admission_requests.labels(webhook=webhook, kind=kind, operation=operation, result=result).inc()
        self.metrics.admission_duration.labels(webhook=webhook, operation=operation).observe(
            time.perf_counter() - started
        )
        return review


__all__ = ["AdmissionService", "CheckTimeout", "SchemaLookup"]
