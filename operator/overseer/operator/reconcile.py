"""Level-based reconciliation of ModelDeployments and ModelSchemas: observe, decide (pure
modules), apply, write status, post Events.

Every entry point converges to the same objects whatever happened before - an operator killed
half-way, a hand-edited Deployment, a deleted Service - because each run reads the live state and
applies only what differs (server-side apply as `schema-overseer`, which also takes fields back
from hand-edits). Runs come from Kopf's handlers (spec changes, operator start), from label-
selected watches of the owned objects (drift, pod readiness, crashes) and from a periodic resync;
runs of one object never overlap.

The spec is re-validated on every run (webhooks can be bypassed or down): an invalid spec gets
Degraded with the reason and an Event, and nothing new is rolled out - the owned objects keep what
they had, so the pods keep serving the last valid model (a rollout already under way goes on).

A ModelDeployment's run is also one step of its rollout (docs/rollout.md): ask the pods what they
serve, plan (`plan.plan`, pure), persist the rollout's record and the model document in the
ConfigMap first, apply the rest, hand the swaps to the executor (`rollout.py`, which runs them as
tasks of their own), report. A step never waits for a swap; the planner's verdict says when the
next one runs (a swap's end, a poll while pods start, or the drift check's interval).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from overseer.api.v1alpha1 import API_VERSION, ModelDeployment, RolloutSpec, SchemaVersion
from overseer.operator import admission, render
from overseer.operator.kube import KubeClient, KubeError, api_path, object_path
from overseer.operator.metrics import Metrics
from overseer.operator.plan import POLL_S, Plan, PlanInput, RolloutSettings, Wait, plan
from overseer.operator.rollout import RolloutExecutor
from overseer.operator.rollout_state import Release, release_of
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
    result: Literal["ok", "blocked", "gone", "failed"]
    """failed: the step hit an error of the operator's own; reported in Degraded, to be retried."""
    message: str = ""


@dataclass(frozen=True)
class _Step:
    """One rollout step: the plan (its status report and verdict) and the pods it saw."""

    plan: Plan
    pods: list[dict[str, Any]]
    unsent: int  # swaps the executor could not start (no address or token yet)


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
        self._scheduled: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: dict[Key, int] = {}
        self._internal_errors: dict[Key, str] = {}  # the last one logged with its traceback, per object
        self._written: dict[tuple[str, str], str] = {}  # ConfigMap -> the resourceVersion we wrote
        self._instance = socket.gethostname()
        self.rollouts = RolloutExecutor(
            settings, metrics, lambda namespace, name: self.trigger("ModelDeployment", namespace, name, 0.0)
        )

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
        """Reconcile after `delay` seconds; triggers that arrive before the run starts are merged
        into one, at the earliest time asked (a swap's end does not wait for the drift check)."""
        key: Key = (kind, namespace, name)
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        handle = self._scheduled.get(key)
        if handle is not None:
            if handle.when() <= when:
                return
            handle.cancel()
        self._scheduled[key] = loop.call_at(when, self._start, key)

    async def close(self) -> None:
        for handle in self._scheduled.values():
            handle.cancel()
        self._scheduled.clear()
        await self.rollouts.close()

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
        self._scheduled.pop(key, None)
        task = asyncio.get_running_loop().create_task(self._triggered(key), name=f"reconcile {key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _triggered(self, key: Key) -> None:
        kind, namespace, name = key
        try:
            if kind == "ModelDeployment":
                outcome = await self.deployment(namespace, name)
            else:
                outcome = await self.schema(namespace, name)
            if outcome.result == "failed":  # logged and reported already
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                self.trigger(kind, namespace, name, min(60.0, 2.0**failures))
                return
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
        if obj.get("kind") == "ConfigMap" and meta.get("resourceVersion") and (
            self._written.get((str(meta.get("namespace")), str(meta.get("name")))) == meta["resourceVersion"]
        ):
            return  # the echo of our own write (a rollout writes its record at every step)
        if owner and meta.get("namespace"):
            self.trigger("ModelDeployment", meta["namespace"], owner, 0.5)

    # --- ModelDeployment ----------------------------------------------------------------------------

    async def _deployment(self, namespace: str, name: str) -> Outcome:
        body = await self.kube.get(api_path(API_VERSION, DEPLOYMENTS, namespace, name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.rollouts.forget((namespace, name))
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
        parsed: ModelDeployment | None = None
        desired: Release | None = None
        conflict = _foreign(live, body["metadata"]["uid"])
        if conflict:
            blocked = Blocked("OwnedObjectConflict", conflict)
        elif not review.allowed:
            blocked = Blocked(_blocked_reason(review), review.message)
        else:
            parsed = ModelDeployment.model_validate(admission.checkable(body, namespace), by_alias=True)
            version = SchemaVersion.model_validate(admission.schema_version(schema, parsed.spec.schema_ref.version))
            desired = release_of(render.model_document(parsed, version))
            url = render.service_url(body, parsed)
        step: _Step | None = None
        internal: str | None = None
        # An invalid spec starts nothing new, but a rollout already under way goes on (its record
        # is in the ConfigMap); a name taken by a foreign object stops everything.
        if conflict is None and (parsed is not None or live.configmap is not None):
            try:
                step = await self._roll(body, parsed, desired, live)
            except KubeError as error:
                if error.transient or error.status in (401, 403):
                    raise
                blocked = Blocked("ApplyFailed", f"the API server refused an owned object: {error.message}")
            except Exception as error:  # a bug of ours: reported and retried, no traceback to the user
                internal = self._internal_error(("ModelDeployment", namespace, name), error)
        if internal is None:
            self._internal_errors.pop(("ModelDeployment", namespace, name), None)
        replicas = parsed.spec.replicas if parsed is not None else _int(spec.get("replicas"), 1)
        update = deployment_status(
            DeploymentObservation(
                generation=int(body["metadata"].get("generation") or 1),
                replicas=replicas,
                desired_model=_desired_model(spec),
                report=step.plan.status if step is not None else None,
                blocked=blocked,
                deployment=live.deployment,
                pods=step.pods if step is not None else [],
                url=url,
                previous=body.get("status") or {},
                internal_error=internal,
            ),
            _now(),
        )
        await self._write_status(body, DEPLOYMENTS, update)
        if step is not None:
            self._schedule_next(namespace, name, step)
        if blocked is not None:
            return Outcome("blocked", f"{blocked.reason}: {blocked.message}")
        if internal is not None:
            return Outcome("failed", internal)
        return Outcome("ok")

    def _internal_error(self, key: Key, error: Exception) -> str:
        """The Degraded message of an unexpected error in a rollout step (no traceback); the
        traceback goes to the operator's log once per distinct error, not at every retry."""
        message = f"internal error in the rollout step, retrying: {type(error).__name__}: {error}"[:1024]
        kind, namespace, name = key
        if self._internal_errors.get(key) != message:
            self._internal_errors[key] = message
            log.error("%s %s/%s: %s", kind, namespace, name, message, exc_info=error)
        else:
            log.error("%s %s/%s: %s", kind, namespace, name, message)
        return message

    async def _roll(
        self, body: Mapping[str, Any], parsed: ModelDeployment | None, desired: Release | None, live: _Live
    ) -> _Step:
        """One step of the rollout: observe the pods, plan, persist (the ConfigMap first: pods start
        from it), start the swaps, apply the other owned objects. `parsed` is None for an invalid
        spec: nothing new starts and only the ConfigMap (the record) is written."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        key = (namespace, name)
        spec = admission.spec_of(body)
        token = await self._token(body, live, create=parsed is not None)
        # Before the pods are observed: what the plan sees of a pod is never older than its outcome.
        outcomes, running = self.rollouts.pending(key)
        selector = f"{render.LABEL_DEPLOYMENT}={name}"
        pods = await self.kube.list(api_path("v1", "pods", namespace), label_selector=selector)
        port = parsed.spec.serving.port if parsed is not None else _serving_port(spec)
        observation = await self.rollouts.observe(pods, token, port)
        rollout = parsed.spec.rollout if parsed is not None else _rollout_spec(spec)
        state = render.rollout_record(live.configmap)
        annotations = meta.get("annotations") or {}
        step = plan(
            PlanInput(
                desired=desired,
                pods=observation.views,
                state=state,
                settings=RolloutSettings(
                    max_unavailable=rollout.max_unavailable,
                    auto_rollback=rollout.auto_rollback,
                    strategy=rollout.strategy,
                    progress_deadline_s=self.settings.rollout_progress_deadline_s,
                ),
                now=_now(),
                outcomes=outcomes,
                running=running,
                history=[h for h in (body.get("status") or {}).get("history") or [] if isinstance(h, Mapping)],
                attempt=str(annotations.get(render.ANNOTATION_RETRY) or ""),
            )
        )
        if step.state is not None:
            configmap = render.render_configmap(body, step.state)
            if not render.is_subset(configmap, live.configmap):
                live.configmap = await self._write_configmap(configmap, live.configmap)
        self.rollouts.consumed(key, outcomes)
        self.rollouts.record(key, state, step.state, step.events)
        # The plan's Events say what the record now says: posted once it is persisted (a plan whose
        # record could not be written is made again, Events included), before anything else can fail.
        # The swaps start as soon as their record is persisted, whatever happens to the rest.
        unsent = self.rollouts.launch(key, step.swaps, observation, token)
        for event in step.events:
            await self.post_event(body, event)
        if parsed is not None:
            rolling = parsed.spec.rollout.strategy == "Rolling" and step.state is not None
            await self._apply_serving(body, parsed, live, step.state.wanted.key if rolling and step.state else None)
        return _Step(plan=step, pods=pods, unsent=len(unsent))

    async def _token(self, body: Mapping[str, Any], live: _Live, *, create: bool) -> str | None:
        """The pods' admin token from the Secret (created once, never replaced)."""
        if live.secret is None and create:
            secret = render.render_secret(body, secrets.token_urlsafe(32))
            try:
                live.secret = await self.kube.create(api_path("v1", "secrets", body["metadata"]["namespace"]), secret)
            except KubeError as error:
                if error.status != 409:  # made meanwhile by a run of ours that was cut short: keep it
                    raise
                live.secret = await self.kube.get(object_path("v1", "secrets", secret))
        elif live.secret is not None and create:
            metadata = render.render_secret_metadata(body)
            if not render.is_subset(metadata, live.secret):
                live.secret = await self.kube.apply(object_path("v1", "secrets", metadata), metadata)
        return _token_of(live.secret)

    async def _write_configmap(self, configmap: dict[str, Any], live: Mapping[str, Any] | None) -> dict[str, Any]:
        """Persist the rollout's record and the model document in one write. The live object's
        resourceVersion is a precondition: a record written meanwhile by another operator process
        (two replicas during an upgrade of the operator) is never overwritten blindly."""
        body = configmap
        version = ((live or {}).get("metadata") or {}).get("resourceVersion")
        if version:
            body = {**configmap, "metadata": {**configmap["metadata"], "resourceVersion": version}}
        written = await self.kube.apply(object_path("v1", "configmaps", configmap), body)
        meta = written.get("metadata") or {}
        if len(self._written) > 10_000:
            self._written.clear()  # a bound, not a cache policy: a dropped entry costs one extra run
        self._written[(meta.get("namespace", ""), meta.get("name", ""))] = str(meta.get("resourceVersion") or "")
        return written

    async def _apply_serving(
        self, body: Mapping[str, Any], parsed: ModelDeployment, live: _Live, template_model: Any
    ) -> None:
        """The Service and the Deployment (after the ConfigMap: new pods start from it)."""
        service = render.render_service(body, parsed)
        if not render.is_subset(service, live.service):
            live.service = await self.kube.apply(object_path("v1", "services", service), service)
        desired = render.render_deployment(body, parsed, self.settings, template_model)
        if not render.is_subset(desired, live.deployment) or _carries_stale_model(desired, live.deployment):
            live.deployment = await self.kube.apply(object_path("apps/v1", "deployments", desired), desired)

    def _schedule_next(self, namespace: str, name: str, step: _Step) -> None:
        """When the rollout's next step runs: a swap's end triggers one itself; a plan that waits
        says after how long; a finished or failed one is checked again for drift."""
        verdict = step.plan.verdict
        if isinstance(verdict, Wait):
            delay = verdict.after_s
            if step.unsent:
                delay = min(delay if delay is not None else POLL_S, POLL_S)
            if delay is not None:
                self.trigger("ModelDeployment", namespace, name, delay)
        else:
            self.trigger("ModelDeployment", namespace, name, self.settings.drift_check_interval_s)

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
        """A core/v1 Event on the object (`kubectl describe`, `kubectl events`), and a log line; best effort."""
        meta = body["metadata"]
        log.info("%s %s/%s: %s: %s", body.get("kind"), meta["namespace"], meta["name"], event.reason, event.message)
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


def _desired_model(spec: Mapping[str, Any]) -> dict[str, Any]:
    model = spec.get("model") if isinstance(spec.get("model"), Mapping) else {}
    assert isinstance(model, Mapping)
    return {k: model[k] for k in ("name", "version", "digest") if k in model}


def _token_of(secret: Mapping[str, Any] | None) -> str | None:
    data = (secret or {}).get("data") or {}
    encoded = data.get(render.TOKEN_KEY) if isinstance(data, Mapping) else None
    if not isinstance(encoded, str):
        return None
    try:
        token = base64.b64decode(encoded, validate=True).decode("utf-8").strip()
    except (ValueError, UnicodeDecodeError):
        return None
    return token or None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _serving_port(spec: Mapping[str, Any]) -> int:
    serving = spec.get("serving") if isinstance(spec.get("serving"), Mapping) else {}
    assert isinstance(serving, Mapping)
    port = _int(serving.get("port"), 3000)
    return port if 0 < port < 65536 else 3000


def _rollout_spec(spec: Mapping[str, Any]) -> RolloutSpec:
    """spec.rollout of a spec that did not validate: its own values when they are valid, else the defaults."""
    try:
        return RolloutSpec.model_validate(spec.get("rollout") or {})
    except ValueError:
        return RolloutSpec()


def _carries_stale_model(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """A pod-template model annotation the desired template does not have (Rolling -> HotSwap):
    `is_subset` cannot see a field to remove."""
    want = (desired["spec"]["template"].get("metadata") or {}).get("annotations") or {}
    have = ((((live or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
    return render.ANNOTATION_MODEL in have and render.ANNOTATION_MODEL not in want


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


__all__ = ["Outcome", "Reconciler"]
