"""The admission I/O shell: lookups, the deadline, and no traceback ever reaching a user."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from operator_testing import NAMESPACE, deployment, schema
from overseer.operator import admission
from overseer.operator.admission_service import AdmissionService
from overseer.operator.kube import Credentials, KubeClient, KubeError
from overseer.operator.metrics import Metrics
from overseer.operator.settings import OperatorSettings


class OfflineKube(KubeClient):
    """Every API call fails as if the API server were unreachable."""

    def __init__(self) -> None:
        super().__init__(Credentials(server="https://127.0.0.1:9"))
        self.calls: list[str] = []

    async def request(self, method: str, path: str, **_: Any) -> Any:
        self.calls.append(f"{method} {path}")
        raise KubeError(0, "Unavailable", "connection refused")


@pytest.fixture
def service() -> AdmissionService:
    settings = OperatorSettings(admission_check_timeout_s=0.2)
    return AdmissionService(OfflineKube(), settings, Metrics("test"), ThreadPoolExecutor(2))


def indexed(namespace: str, name: str) -> dict[str, Any] | None:
    return schema() if (namespace, name) == (NAMESPACE, "object-detector") else None


async def test_an_indexed_schema_needs_no_api_call(service: AdmissionService) -> None:
    review = await service.validate_deployment("CREATE", deployment(), None, NAMESPACE, indexed)
    assert review.allowed, review.message
    assert service.kube.calls == []  # type: ignore[attr-defined]
    defaults = await service.default_deployment("CREATE", deployment(), None, NAMESPACE, indexed)
    assert {op["path"] for op in defaults.patch} >= {"/spec/model/customObjects/iou"}


async def test_an_unreachable_api_server_is_a_retryable_denial(service: AdmissionService) -> None:
    review = await service.validate_deployment("CREATE", deployment(), None, NAMESPACE, lambda ns, name: None)
    assert not review.allowed
    assert review.code == 503
    assert "could not read what this check needs from the API server (Unavailable)" in review.message


async def test_an_unexpected_error_never_shows_a_traceback(
    service: AdmissionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> admission.Review:
        raise KeyError("spec")

    monkeypatch.setattr(admission, "review_deployment", broken)
    review = await service.validate_deployment("CREATE", deployment(), None, NAMESPACE, indexed)
    assert not review.allowed
    assert review.code == 500
    assert "Traceback" not in review.message and "KeyError" not in review.message
    assert "internal error in the schema-overseer operator" in review.message


async def test_a_check_past_its_deadline_is_refused_and_the_loop_stays_free(
    service: AdmissionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(*_: Any, **__: Any) -> admission.Review:
        time.sleep(1)
        return admission.Review.allow()

    monkeypatch.setattr(admission, "review_schema", slow)
    started = time.monotonic()
    review = await service.validate_schema("CREATE", schema(), None, NAMESPACE)
    assert time.monotonic() - started < 0.9
    assert not review.allowed
    assert review.code == 503
    assert "did not finish within 0.2s" in review.message


async def test_decisions_are_counted(service: AdmissionService) -> None:
    await service.validate_deployment("CREATE", deployment(), None, NAMESPACE, indexed)
    text = service.metrics.render().decode()
    assert (
        'overseer_admission_requests_total{kind="ModelDeployment",operation="CREATE",result="allowed",'
        'webhook="validate-modeldeployment"} 1.0'
    ) in text


def _nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
async def test_a_body_nested_too_deep_for_json_gets_the_checks_own_answer(
    service: AdmissionService, operation: str
) -> None:
    """json.dumps of the body (to size the check) gives up at ~1000 levels: that must not become an
    internal error - the check's bounded walk names the field and the bound."""
    body = deployment()
    body["spec"]["model"]["labels"] = {"owner": "ml-team", "nested": _nested(100_000)}
    old = None
    if operation == "UPDATE":  # the same deep spec before: too deep to compare, too
        old = deployment()
        old["spec"]["model"]["labels"] = {"owner": "ml-team", "nested": _nested(100_000)}
    review = await service.validate_deployment(operation, body, old, NAMESPACE, indexed)
    assert not review.allowed and review.code == 422
    assert review.message.startswith("spec.model.labels: too large to check: nested more than")
    defaults = await service.default_deployment(operation, body, old, NAMESPACE, indexed)
    assert defaults.code != 500, defaults.message
