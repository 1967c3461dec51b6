"""An unexpected error in a rollout step (a bug of the operator's own) is reported, not thrown at
Kopf: Degraded=True `InternalError` with a one-line message, an Event, and a retry - never a
traceback that Kopf would print at every retry, forever."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf
import pytest
from operator_testing import NAMESPACE, deployment, schema
from overseer.operator import handlers, reconcile
from overseer.operator.metrics import Metrics
from overseer.operator.reconcile import Outcome, Reconciler
from overseer.operator.settings import OperatorSettings


class _Kube:
    """The API server as the reconciler sees it: one ModelDeployment and its schema, nothing owned yet."""

    def __init__(self, objects: Mapping[str, dict[str, Any]]) -> None:
        self.objects = dict(objects)
        self.status_patches: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []

    async def get(self, path: str) -> dict[str, Any] | None:
        return self.objects.get(path)

    async def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        return []

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append(body)
        return {**body, "metadata": {**body.get("metadata", {}), "resourceVersion": "1"}}

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.status_patches.append(patch)
        return patch

    async def apply(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return body


async def _inline(check: Any, *args: Any, **kwargs: Any) -> Any:
    return check(*args, **kwargs)


def _broken_plan(*_: Any, **__: Any) -> Any:
    raise AssertionError("a planner invariant does not hold")


async def test_a_failing_rollout_step_is_degraded_internal_error_and_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    body, schema_body = deployment(), schema()
    name = body["metadata"]["name"]
    kube = _Kube(
        {
            f"/apis/overseer.dev/v1alpha1/namespaces/{NAMESPACE}/modeldeployments/{name}": body,
            f"/apis/overseer.dev/v1alpha1/namespaces/{NAMESPACE}/modelschemas/{schema_body['metadata']['name']}": (
                schema_body
            ),
        }
    )
    monkeypatch.setattr(reconcile, "plan", _broken_plan)
    reconciler = Reconciler(kube=kube, settings=OperatorSettings(), metrics=Metrics("test"), run_check=_inline)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="overseer.operator.reconcile"):
        outcome = await reconciler.deployment(NAMESPACE, name)
        again = await reconciler.deployment(NAMESPACE, name)
    assert outcome.result == again.result == "failed"
    assert "AssertionError: a planner invariant does not hold" in outcome.message
    status = kube.status_patches[0]["status"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "InternalError")
    assert "Traceback" not in degraded["message"] and "a planner invariant does not hold" in degraded["message"]
    events = [e for e in kube.created if e.get("kind") == "Event"]
    assert any(e["reason"] == "InternalError" and e["type"] == "Warning" for e in events)
    # The traceback goes to the operator's log once, not at every retry.
    assert sum(1 for r in caplog.records if r.exc_info) == 1
    assert sum(1 for r in caplog.records if "internal error in the rollout step" in r.getMessage()) == 2

    # Kopf gets a retry with the one-line reason, not the exception.
    async def failed() -> Outcome:
        return outcome

    with pytest.raises(kopf.TemporaryError) as raised:
        await handlers._reconciled(failed())
    assert "AssertionError" in str(raised.value) and raised.value.__cause__ is None


async def test_an_unexpected_exception_reaching_the_handler_becomes_a_retry() -> None:
    async def broken() -> Outcome:
        raise KeyError("metadata")

    with pytest.raises(kopf.TemporaryError) as raised:
        await handlers._reconciled(broken(), "ModelDeployment ns/x")
    assert "internal error, retrying: KeyError" in str(raised.value)
