"""Kopf registration only: every handler is a thin shell over the runtime (admission service,
reconciler), with an explicit id and its errors chosen on purpose.

- TemporaryError: the API server was unreachable, throttled us, or refused for a reason that can
  go away (RBAC being fixed, a conflict): Kopf retries with the delay given.
- PermanentError: the spec itself cannot be rolled out (invalid, a name taken by a foreign object,
  an owned object the API server rejects); retrying cannot help until the spec changes, and the
  object's status and Events say why.

No handler adds a finalizer (no on.delete, timers or daemons: they would block deletion while the
operator is down); owned objects carry ownerReferences, so garbage collection removes them. Work
that outlives a handler - a rollout's swaps, the drift check - belongs to the reconciler's own
tasks and timers (reconcile.py, rollout.py), not to Kopf.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, cast

import jsonpatch
import kopf

from overseer.api.v1alpha1 import GROUP, VERSION
from overseer.operator.admission import Review, spec_of
from overseer.operator.kube import KubeError
from overseer.operator.reconcile import Outcome
from overseer.operator.runtime import Runtime
from overseer.operator.settings import FIELD_MANAGER, OperatorSettings
from overseer.operator.webhooks import DEFAULT_DEPLOYMENT, VALIDATE_DEPLOYMENT, VALIDATE_SCHEMA, Webhook

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]

DEPLOYMENTS = (GROUP, VERSION, "modeldeployments")
SCHEMAS = (GROUP, VERSION, "modelschemas")
PREFIX = "overseer.dev"

log = logging.getLogger("overseer.operator.handlers")


def runtime_of(memo: Any) -> Runtime:
    runtime = memo.get("runtime")
    if not isinstance(runtime, Runtime):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return runtime


# --- lifecycle ---------------------------------------------------------------------------------------


@kopf.on.startup(id="start")
async def start(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    # The embedded runner passes its settings (flags over environment) in the memo; `kopf run`
    # builds them from the environment here.
    config = memo.get("config")
    config = config if isinstance(config, OperatorSettings) else OperatorSettings()
    runtime = await Runtime.start(config)
    memo["runtime"] = runtime
    # Progress and the last handled spec in annotations under our own prefix: the status has a
    # fixed schema, and Kopf's `status.kopf` would be pruned by the API server anyway.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX)
    settings.persistence.finalizer = f"{PREFIX}/kopf-finalizer"  # never added: see the module docstring
    # Events are posted by the reconciler, one per condition transition; not Kopf's handler chatter.
    settings.posting.enabled = False
    settings.posting.reporting_component = FIELD_MANAGER
    # Silent watch streams must end (kopf #585): the server closes them, the client gives up later.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = config.api_timeout_s * 3
    settings.admission.managed = None  # our own configurations: see overseer.operator.webhooks
    settings.admission.server = await runtime.webhook_server()
    # One access-log line and one "Webhook ... succeeded" line per admission review are noise at
    # any scale (and cost time on the hot path); metrics count them. Failures still log.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


@kopf.on.cleanup(id="stop")
async def stop(memo: Any, **_: Any) -> None:
    runtime = memo.get("runtime")
    if isinstance(runtime, Runtime):
        await runtime.close()


@kopf.on.login(id="login")
def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """Kopf logs in with the credentials the runtime uses (kubeconfig or in-cluster)."""
    credentials = runtime_of(memo).kube.credentials
    token = credentials.current_token()
    return kopf.ConnectionInfo(
        server=credentials.server,
        ca_path=credentials.ca_file,
        insecure=credentials.insecure,
        scheme="Bearer" if token else None,
        token=token,
        certificate_path=credentials.cert_file,
        private_key_path=credentials.key_file,
    )


@kopf.on.probe(id="webhook-mode")
def webhook_mode(memo: Any, **_: Any) -> str:
    return runtime_of(memo).settings.webhook_mode


# --- index -------------------------------------------------------------------------------------------


@kopf.index(*SCHEMAS, id="schemas")
def schemas(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """ModelSchemas by (namespace, name), in memory: deployment admission needs no API call."""
    metadata = {"name": name, "namespace": namespace}
    entry = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelSchema", "metadata": metadata, "spec": dict(spec)}
    return {(namespace or "", name): entry}


SchemaIndex = kopf.Index[tuple[str, str], dict[str, Any]]


def _index(kwargs: Mapping[str, Any]) -> SchemaIndex:
    # Kopf passes indices as keyword arguments named after the index handler's id.
    index: SchemaIndex = kwargs["schemas"]
    return index


def _lookup(index: SchemaIndex) -> Callable[[str, str], Mapping[str, Any] | None]:
    def lookup(namespace: str, name: str) -> Mapping[str, Any] | None:
        return next(iter(index.get((namespace, name), [])), None)

    return lookup


def _names_in(index: SchemaIndex, namespace: str) -> Callable[[], list[str]]:
    return lambda: [name for ns, name in index if ns == namespace]


# --- admission -----------------------------------------------------------------------------------------


def _raw(body: Any) -> dict[str, Any] | None:
    return dict(body) if body is not None else None


def _answer(review: Review, warnings: list[str]) -> None:
    warnings.extend(review.warnings)
    if not review.allowed:
        raise kopf.AdmissionError(review.message, code=review.code)


def _operations(webhook: Webhook) -> list[Operation]:
    return [cast(Operation, op) for op in webhook.operations]


@kopf.on.mutate(*DEPLOYMENTS, id=DEFAULT_DEPLOYMENT.handler_id, operations=_operations(DEFAULT_DEPLOYMENT))
async def default_deployment(
    body: kopf.Body,
    patch: kopf.Patch,
    warnings: list[str],
    namespace: str | None,
    memo: Any,
    **kwargs: Any,
) -> None:
    review = await runtime_of(memo).admission.default_deployment(
        str(kwargs.get("operation") or ""),
        dict(body),
        _raw(kwargs.get("old")),
        namespace or "",
        _lookup(_index(kwargs)),
    )
    _answer(review, warnings)
    if review.patch:
        operations = [dict(op) for op in review.patch]
        patch.fns.append(lambda raw: jsonpatch.apply_patch(raw, operations, in_place=True))


@kopf.on.validate(*DEPLOYMENTS, id=VALIDATE_DEPLOYMENT.handler_id, operations=_operations(VALIDATE_DEPLOYMENT))
async def validate_deployment(
    body: kopf.Body,
    warnings: list[str],
    namespace: str | None,
    memo: Any,
    **kwargs: Any,
) -> None:
    index = _index(kwargs)
    review = await runtime_of(memo).admission.validate_deployment(
        str(kwargs.get("operation") or ""),
        dict(body),
        _raw(kwargs.get("old")),
        namespace or "",
        _lookup(index),
        _names_in(index, namespace or ""),
    )
    _answer(review, warnings)


@kopf.on.validate(*SCHEMAS, id=VALIDATE_SCHEMA.handler_id, operations=_operations(VALIDATE_SCHEMA))
async def validate_schema(
    body: kopf.Body, warnings: list[str], namespace: str | None, memo: Any, **kwargs: Any
) -> None:
    # On DELETE, Kopf passes the stored object as `body` (and `old`).
    review = await runtime_of(memo).admission.validate_schema(
        str(kwargs.get("operation") or ""), dict(body), _raw(kwargs.get("old")), namespace or ""
    )
    _answer(review, warnings)


# --- reconciliation -------------------------------------------------------------------------------------


async def _reconciled(run: Awaitable[Outcome], what: str = "") -> Outcome:
    """A reconcile's outcome as Kopf needs it. Every failure is a retry with a one-line reason:
    an unexpected error (a bug of ours) is logged once here and retried, never a traceback that
    Kopf would print at every retry."""
    try:
        outcome = await run
    except KubeError as error:
        delay = 30 if error.status in (401, 403) else 5
        raise kopf.TemporaryError(f"API error, retrying: {error}", delay=delay) from error
    except Exception as error:
        # One line per retry; the traceback only at debug level (it would repeat every 30 s).
        log.error("%s: internal error, retrying: %s: %s", what or "reconcile", type(error).__name__, error)  # noqa: TRY400
        log.debug("%s: internal error", what or "reconcile", exc_info=error)
        raise kopf.TemporaryError(f"internal error, retrying: {type(error).__name__}: {error}", delay=30) from error
    if outcome.result == "blocked":
        raise kopf.PermanentError(outcome.message)
    if outcome.result == "failed":  # reported in Degraded and logged by the reconciler
        raise kopf.TemporaryError(outcome.message, delay=30)
    return outcome


def _schema_name(essence: Any) -> str | None:
    ref = spec_of(essence).get("schemaRef") if isinstance(essence, Mapping) else None
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return name if isinstance(name, str) and name else None


@kopf.on.resume(*DEPLOYMENTS, id="deployment-resume")
@kopf.on.create(*DEPLOYMENTS, id="deployment-create")
@kopf.on.update(*DEPLOYMENTS, id="deployment-update")
async def reconcile_deployment(namespace: str | None, name: str, old: Any, new: Any, memo: Any, **_: Any) -> None:
    runtime = runtime_of(memo)
    # The schemas' status lists which deployments use which version: refresh both ends of a change.
    for schema in {_schema_name(old), _schema_name(new)} - {None}:
        runtime.reconciler.trigger("ModelSchema", namespace or "", str(schema))
    await _reconciled(runtime.reconciler.deployment(namespace or "", name), f"ModelDeployment {namespace}/{name}")


def _deleted(type: str, **_: Any) -> bool:
    return type == "DELETED"


@kopf.on.event(*DEPLOYMENTS, id="deployment-deleted", when=_deleted)
async def deployment_deleted(namespace: str | None, name: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    runtime = runtime_of(memo)
    runtime.reconciler.rollouts.forget((namespace or "", name))  # its swaps are of no use any more
    schema = _schema_name(body)
    if schema:
        runtime.reconciler.trigger("ModelSchema", namespace or "", schema)


@kopf.on.resume(*SCHEMAS, id="schema-resume")
@kopf.on.create(*SCHEMAS, id="schema-create")
@kopf.on.update(*SCHEMAS, id="schema-update")
async def reconcile_schema(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    # Deployments that waited for this schema (or a version of it) are reconciled again.
    await _reconciled(
        runtime_of(memo).reconciler.schema(namespace or "", name, dependents=True), f"ModelSchema {namespace}/{name}"
    )
