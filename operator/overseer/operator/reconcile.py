"""Level-based reconciliation of ModelDeployments and ModelSchemas: observe, decide (pure
modules), apply, write status, post Events for transitions.

Every entry point converges to the same objects whatever happened before - an operator killed
half-way, a hand-edited Deployment, a deleted Service - because each run reads the live state and
applies only what differs (server-side apply as `schema-overseer`, which also takes fields back
from hand-edits). Runs come from Kopf's handlers (spec changes, operator start), from label-
selected watches of the owned objects (drift, pod readiness, crashes) and from a periodic resync;
runs of one object never overlap.

The spec is re-validated on every run (webhooks can be bypassed or down): an invalid spec gets
Degraded with the reason and an Event, and nothing is rolled out - the owned objects keep what
they had, so the pods keep serving the last valid model.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from overseer.api.v1alpha1 import API_VERSION, ModelDeployment, SchemaVersion
from overseer.operator import admission, render
from overseer.operator.kube import KubeClient, KubeError, api_path, object_path
from overseer.operator.metrics import Metrics
from overseer.operator.settings import FIELD_MANAGER, OperatorSettings
from overseer.operator.status import (
    Blocked,
    DeploymentObservation,
    Event,
    StatusUpdate,
    deployment_status,
    schema_status,
)

log = logging.getLogger("overseer.operator.reconcile")

DEPLOYMENTS = "modeldeployments"
SCHEMAS = "modelschemas"
Kind = Literal["ModelDeployment", "ModelSchema"]
Key = tuple[Kind, str, str]
CHILD_RESOURCES = (("apps/v1", "deployments"), ("v1", "pods"), ("v1", "configmaps"), ("v1", "services"))


@dataclass(frozen=True)
class Outcome:
    result: Literal["ok", "blocked", "gone"]
    message: str = ""


@dataclass
class _Live:
    configmap: dict[str, Any] | None
    secret: dict[str, Any] | None
    deployment: dict[str, Any] | None
    service: dict[str, Any] | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Reconciler:
    def __init__(
        self,
        kube: KubeClient,
        settings: OperatorSettings,
        metrics: Metrics,
        run_check: Callable[..., Awaitable[Any]],
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self._run_check = run_check  # runs a pure check off the event loop
        self._locks: dict[Key, asyncio.Lock] = {}
        self._scheduled: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: dict[Key, int] = {}
        self._instance = socket.gethostname()

    # --- entry points ------------------------------------------------------------------------------

    async def deployment(self, namespace: str, name: str) -> Outcome:
        return await self._run(("ModelDeployment", namespace, name), self._deployment)

    async def schema(self, namespace: str, name: str, *, dependents: bool = False) -> Outcome:
        outcome = await self._run(("ModelSchema", namespace, name), self._schema)
        if dependents and outcome.result != "gone":
            for deployment in await self._deployments_referencing(namespace, name):
                self.trigger("ModelDeployment", namespace, deployment)
        return outcome

    def trigger(self, kind: Kind, namespace: str, name: str, delay: float = 0.3) -> None:
        """Reconcile soon; triggers that arrive before the run starts are merged into one."""
        key: Key = (kind, namespace, name)
        if key in self._scheduled:
            return
        self._scheduled.add(key)
        asyncio.get_running_loop().call_later(delay, self._start, key)

    async def run(self) -> None:
        """The background part: watches of owned objects and the periodic resync (until cancelled)."""
        namespaces: list[str | None] = list(self.settings.namespaces) or [None]
        watches = [self._watch_children(api_version, plural, ns) for api_version, plural in CHILD_RESOURCES
                   for ns in namespaces]  # fmt: skip
        try:
            await asyncio.gather(self._resync(namespaces), *watches)
        finally:
            for task in list(self._tasks):
                task.cancel()

    # --- scheduling -------------------------------------------------------------------------------

    def _start(self, key: Key) -> None:
        self._scheduled.discard(key)
        task = asyncio.get_running_loop().create_task(self._triggered(key), name=f"reconcile {key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _triggered(self, key: Key) -> None:
        kind, namespace, name = key
        try:
            if kind == "ModelDeployment":
                await self.deployment(namespace, name)
            else:
                await self.schema(namespace, name)
            self._failures.pop(key, None)
        except Exception as error:
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            delay = min(60.0, 2.0**failures)
            if isinstance(error, KubeError):
                log.warning("%s %s/%s: %s; retrying in %.0fs", kind, namespace, name, error, delay)
            else:
                log.exception("%s %s/%s: unexpected error; retrying in %.0fs", kind, namespace, name, delay)
            self.trigger(kind, namespace, name, delay)

    async def _run(self, key: Key, body: Callable[[str, str], Awaitable[Outcome]]) -> Outcome:
        kind = key[0]
        started = time.perf_counter()
        async with self._locks.setdefault(key, asyncio.Lock()):
            try:
                outcome = await body(key[1], key[2])
            except KubeError as error:
                self.metrics.reconciles.labels(kind=kind, result="error").inc()
                self.metrics.reconcile_errors.labels(kind=kind, reason=error.reason).inc()
                raise
            except Exception:
                self.metrics.reconciles.labels(kind=kind, result="error").inc()
                self.metrics.reconcile_errors.labels(kind=kind, reason="InternalError").inc()
                raise
            finally:
                self.metrics.reconcile_duration.labels(kind=kind).observe(time.perf_counter() - started)
        if outcome.result == "gone":
            self._locks.pop(key, None)
        self.metrics.reconciles.labels(kind=kind, result=outcome.result).inc()
        return outcome

    async def _resync(self, namespaces: list[str | None]) -> None:
        """Every object at least every resync interval: drift nobody told us about (a deleted
        Secret, a missed watch event) is repaired."""
        while True:
            await asyncio.sleep(self.settings.resync_interval_s)
            for ns in namespaces:
                try:
                    for plural, kind in ((SCHEMAS, "ModelSchema"), (DEPLOYMENTS, "ModelDeployment")):
                        for item in await self.kube.list(api_path(API_VERSION, plural, ns)):
                            meta = item["metadata"]
                            spread = random.uniform(0, min(10.0, self.settings.resync_interval_s / 2))
                            self.trigger(kind, meta["namespace"], meta["name"], spread)  # type: ignore[arg-type]
                except KubeError as error:
                    log.warning("resync: %s", error)

    async def _watch_children(self, api_version: str, plural: str, namespace: str | None) -> None:
        """Label-selected watch of one kind of owned object: any change reconciles its owner."""
        path = api_path(api_version, plural, namespace)
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    answer = await self.kube.request("GET", path, params={"labelSelector": render.MANAGED_SELECTOR})
                    version = answer["metadata"]["resourceVersion"]
                    for item in answer.get("items") or []:
                        self._owner_changed(item)
                async for event_type, obj in self.kube.watch(
                    path, label_selector=render.MANAGED_SELECTOR, resource_version=version
                ):
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event_type != "BOOKMARK":
                        self._owner_changed(obj)
                failures = 0
            except KubeError as error:
                if error.status == 410:
                    version = None  # too old: list again
                    continue
                failures += 1
                log.debug("watch %s: %s", path, error)
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))

    def _owner_changed(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(render.LABEL_DEPLOYMENT)
        if owner and meta.get("namespace"):
            self.trigger("ModelDeployment", meta["namespace"], owner, 0.5)

    # --- ModelDeployment ----------------------------------------------------------------------------

    async def _deployment(self, namespace: str, name: str) -> Outcome:
        body = await self.kube.get(api_path(API_VERSION, DEPLOYMENTS, namespace, name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            return Outcome("gone")  # garbage collection removes what it owned
        spec = admission.spec_of(body)
        ref = spec.get("schemaRef") if isinstance(spec.get("schemaRef"), Mapping) else {}
        assert isinstance(ref, Mapping)
        schema = None
        if isinstance(ref.get("name"), str) and ref.get("name"):
            schema = await self.kube.get(api_path(API_VERSION, SCHEMAS, namespace, ref["name"]))
        hint: list[str] = []
        if schema is None:
            hint = [s["metadata"]["name"] for s in await self.kube.list(api_path(API_VERSION, SCHEMAS, namespace))]
        review: admission.Review = await self._run_check(
            admission.review_deployment, "CREATE", body, None, schema, namespace=namespace, schemas_in_namespace=hint
        )
        names = render.Names.of(name)
        live = _Live(
            *await asyncio.gather(
                self.kube.get(api_path("v1", "configmaps", namespace, names.configmap)),
                self.kube.get(api_path("v1", "secrets", namespace, names.secret)),
                self.kube.get(api_path("apps/v1", "deployments", namespace, names.deployment)),
                self.kube.get(api_path("v1", "services", namespace, names.service)),
            )
        )
        blocked: Blocked | None = None
        url: str | None = None
        pods_model: Mapping[str, Any] | None = None
        parsed: ModelDeployment | None = None
        desired_model: dict[str, Any] = _desired_model(spec)
        if not review.allowed:
            blocked = Blocked(_blocked_reason(review), review.message)
        else:
            parsed = ModelDeployment.model_validate(admission.checkable(body, namespace), by_alias=True)
            version = SchemaVersion.model_validate(admission.schema_version(schema, parsed.spec.schema_ref.version))
            conflict = _foreign(live, body["metadata"]["uid"])
            if conflict:
                blocked = Blocked("OwnedObjectConflict", conflict)
            else:
                try:
                    pods_model = await self._apply(body, parsed, version, live)
                except KubeError as error:
                    if error.transient or error.status in (401, 403):
                        raise
                    blocked = Blocked("ApplyFailed", f"the API server refused an owned object: {error.message}")
                url = render.service_url(body, parsed)
                desired_model = _desired_model(spec, render.model_document(parsed, version).model.metadata)
        pods = await self.kube.list(
            api_path("v1", "pods", namespace), label_selector=f"{render.LABEL_DEPLOYMENT}={name}"
        )
        replicas = parsed.spec.replicas if parsed is not None else int(spec.get("replicas") or 1)
        update = deployment_status(
            DeploymentObservation(
                generation=int(body["metadata"].get("generation") or 1),
                replicas=replicas,
                desired_model=desired_model,
                blocked=blocked,
                deployment=live.deployment,
                pods=pods,
                pods_model=pods_model,
                url=url,
                previous=body.get("status") or {},
            ),
            _now(),
        )
        await self._write_status(body, DEPLOYMENTS, update)
        if blocked is not None:
            return Outcome("blocked", f"{blocked.reason}: {blocked.message}")
        return Outcome("ok")

    async def _apply(
        self, body: Mapping[str, Any], parsed: ModelDeployment, version: SchemaVersion, live: _Live
    ) -> Mapping[str, Any]:
        """Make the owned objects what the spec says (ConfigMap first: pods start from it).
        Returns the model the current pods started from; `live` is updated in place."""
        document = render.model_document(parsed, version)
        configmap = render.render_configmap(body, document)
        if not render.is_subset(configmap, live.configmap):
            live.configmap = await self.kube.apply(object_path("v1", "configmaps", configmap), configmap)
        if live.secret is None:
            secret = render.render_secret(body, secrets.token_urlsafe(32))
            try:
                live.secret = await self.kube.create(api_path("v1", "secrets", body["metadata"]["namespace"]), secret)
            except KubeError as error:
                if error.status != 409:  # made meanwhile by a run of ours that was cut short: keep it
                    raise
        else:
            metadata = render.render_secret_metadata(body)
            if not render.is_subset(metadata, live.secret):
                live.secret = await self.kube.apply(object_path("v1", "secrets", metadata), metadata)
        service = render.render_service(body, parsed)
        if not render.is_subset(service, live.service):
            live.service = await self.kube.apply(object_path("v1", "services", service), service)
        identity = render.model_identity(document.model)
        pods_model: Mapping[str, Any] = identity
        probe = render.render_deployment(body, parsed, self.settings, identity)
        if render.pod_template_matches(probe, live.deployment):
            # No pod is being replaced: the pods keep the model they started from.
            pods_model = _annotated_model(live.deployment) or identity
        desired = render.render_deployment(body, parsed, self.settings, pods_model)
        if not render.is_subset(desired, live.deployment):
            live.deployment = await self.kube.apply(object_path("apps/v1", "deployments", desired), desired)
        return pods_model

    # --- ModelSchema ----------------------------------------------------------------------------------

    async def _schema(self, namespace: str, name: str) -> Outcome:
        body = await self.kube.get(api_path(API_VERSION, SCHEMAS, namespace, name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            return Outcome("gone")
        review: admission.Review = await self._run_check(admission.schema_validity, body)
        items = await self.kube.list(api_path(API_VERSION, DEPLOYMENTS, namespace))
        spec = admission.spec_of(body)
        versions = sorted(
            v["version"]
            for v in spec.get("versions") or []
            if isinstance(v, Mapping) and isinstance(v.get("version"), int)
        )
        update = schema_status(
            generation=int(body["metadata"].get("generation") or 1),
            latest=admission.latest_version(body),
            usage=admission.schema_usage(name, items),
            problems=None if review.allowed else review.message,
            versions=versions,
            mode=str(spec.get("compatibility") or "BACKWARD"),
            previous=body.get("status") or {},
            now=_now(),
        )
        await self._write_status(body, SCHEMAS, update)
        return Outcome("ok" if review.allowed else "blocked", review.message)

    async def _deployments_referencing(self, namespace: str, schema: str) -> list[str]:
        items = await self.kube.list(api_path(API_VERSION, DEPLOYMENTS, namespace))
        return [
            item["metadata"]["name"]
            for item in items
            if (admission.spec_of(item).get("schemaRef") or {}).get("name") == schema
        ]

    # --- writing -----------------------------------------------------------------------------------

    async def _write_status(self, body: Mapping[str, Any], plural: str, update: StatusUpdate) -> None:
        previous = body.get("status") or {}
        if any(previous.get(key) != value for key, value in update.status.items()):
            try:
                await self.kube.merge_patch(object_path(API_VERSION, plural, body, "status"), {"status": update.status})
            except KubeError as error:
                if error.status == 404:
                    return  # deleted meanwhile
                raise
        for event in update.events:
            await self.post_event(body, event)

    async def post_event(self, body: Mapping[str, Any], event: Event) -> None:
        """A core/v1 Event on the object (`kubectl describe`, `kubectl events`); best effort."""
        meta = body["metadata"]
        stamp = _now().strftime("%Y-%m-%dT%H:%M:%SZ")
        record = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": body.get("apiVersion", API_VERSION),
                "kind": body.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": self._instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.kube.create(api_path("v1", "events", meta["namespace"]), record)
        except KubeError as error:
            log.warning("could not post event %s on %s/%s: %s", event.reason, meta["namespace"], meta["name"], error)


def _desired_model(spec: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    model = spec.get("model") if isinstance(spec.get("model"), Mapping) else {}
    assert isinstance(model, Mapping)
    out = {k: model[k] for k in ("name", "version", "digest", "uri") if k in model}
    meta = metadata if metadata is not None else model.get("metadata")
    if isinstance(meta, Mapping):
        out[admission.SERVED_METADATA_KEY] = dict(meta)
    ref = spec.get("schemaRef")
    if isinstance(ref, Mapping) and isinstance(ref.get("version"), int):
        out["schemaVersion"] = ref["version"]
    return out


def _blocked_reason(review: admission.Review) -> str:
    paths = [path for path, _ in review.problems]
    if any(path.startswith("spec.schemaRef") for path in paths):
        return (
            "SchemaNotFound"
            if any("not found" in m or "has no version" in m for _, m in review.problems)
            else ("InvalidSchemaRef")
        )
    if paths and all(path.startswith("spec.model.") for path in paths):
        return "InvalidConfig"
    return "InvalidSpec"


def _foreign(live: _Live, uid: str) -> str | None:
    for kind, obj in (("ConfigMap", live.configmap), ("Secret", live.secret), ("Deployment", live.deployment),
                      ("Service", live.service)):  # fmt: skip
        if obj is None:
            continue
        refs = obj["metadata"].get("ownerReferences") or []
        if not any(ref.get("uid") == uid and ref.get("controller") for ref in refs):
            name = obj["metadata"]["name"]
            return (
                f"{kind} {name} exists and is not owned by this ModelDeployment: "
                "delete it or rename the ModelDeployment"
            )
    return None


def _annotated_model(deployment: Mapping[str, Any] | None) -> dict[str, Any] | None:
    text = ((deployment or {}).get("metadata") or {}).get("annotations", {}).get(render.ANNOTATION_MODEL)
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("digest") else None


__all__ = ["Outcome", "Reconciler"]
