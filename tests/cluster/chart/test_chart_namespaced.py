"""The chart serving named namespaces only (`watchNamespaces`), with the CRDs applied by the user
(`crds.enabled=false`): the operator gets a Role in each served namespace and nothing elsewhere -
no Secret outside them - its webhooks judge only those namespaces, and it does all its work
there under those Roles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chart_support import can_i, condition, example, manifest, operator_pods, pod_log, unique
from localcluster.overseer_operator import ChartRelease, install_chart, uninstall_chart
from localcluster.stack import Stack
from support.cluster import REPO_ROOT, Kubectl
from support.polling import wait_for

UNSCHEDULABLE = {"overseer.dev/test": "never-scheduled"}  # no serving process: admission and owned objects only


@pytest.fixture(scope="module")
def served(kubectl_admin: Kubectl) -> Iterator[tuple[str, str]]:
    names = (unique("team"), unique("other"))
    for name in names:
        kubectl_admin.run("create", "namespace", name)
    yield names
    kubectl_admin.run("delete", "namespace", *names, "--wait=false", check=False)


@pytest.fixture(scope="module")
def release(local_cluster: Stack, kubectl_admin: Kubectl, served: tuple[str, str]) -> Iterator[ChartRelease]:
    # crds.enabled=false: the user applies the CRDs (as a GitOps repository would, in an earlier wave).
    kubectl_admin.run("apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds"))
    name = unique("overseer-ns")
    chart = install_chart(local_cluster.dir, release=name, namespace=name,
                          settings=(f"watchNamespaces={{{served[0]}}}", "crds.enabled=false"))  # fmt: skip
    try:
        yield chart
    finally:
        uninstall_chart(chart)
        kubectl_admin.run("delete", "namespace", chart.namespace, "--wait=false", check=False)


def deployment(namespace: str) -> dict[str, Any]:
    body = example("cat-recognition.modeldeployment.yaml", namespace)
    body["spec"]["replicas"] = 1
    body["spec"]["serving"] = {"port": 3000, "nodeSelector": UNSCHEDULABLE}
    return body


def test_the_operator_is_granted_the_served_namespace_only(
    kubectl_admin: Kubectl, release: ChartRelease, served: tuple[str, str]
) -> None:
    team, other = served
    assert can_i(kubectl_admin, release, "get", "secrets", "-n", team)
    assert can_i(kubectl_admin, release, "create", "deployments.apps", "-n", team)
    for namespace in (other, release.namespace, "kube-system", "default"):
        for query in (("get", "secrets"), ("create", "deployments.apps"), ("list", "modeldeployments.overseer.dev"),
                      ("create", "configmaps"), ("watch", "pods")):  # fmt: skip
            assert not can_i(kubectl_admin, release, *query, "-n", namespace), (query, namespace)
    assert not can_i(kubectl_admin, release, "list", "modeldeployments.overseer.dev", "-A")
    assert not can_i(kubectl_admin, release, "list", "secrets", "-A")


def test_the_webhooks_judge_the_served_namespace_only(
    kubectl_admin: Kubectl, release: ChartRelease, served: tuple[str, str]
) -> None:
    team, other = served
    schema = REPO_ROOT / "examples" / "object-detector.modelschema.yaml"
    bad = deployment(team)
    del bad["spec"]["model"]["customObjects"]["conf"]
    for namespace in served:
        kubectl_admin.in_namespace(namespace).apply(manifest(example(schema.name, namespace)))
    refused = kubectl_admin.in_namespace(team).run("apply", "-f", "-", stdin=manifest(bad), check=False)
    assert "spec.model.customObjects.conf: required property missing" in refused.stderr
    # Another namespace is not this release's to judge (another release, or none, may serve it).
    bad["metadata"]["namespace"] = other
    assert kubectl_admin.in_namespace(other).run("apply", "-f", "-", stdin=manifest(bad), check=False).returncode == 0


def test_the_operator_reconciles_the_served_namespace_under_its_roles(
    local_cluster: Stack, kubectl_admin: Kubectl, release: ChartRelease, served: tuple[str, str]
) -> None:
    team, other = served
    kubectl = kubectl_admin.in_namespace(team)
    kubectl.apply(manifest(example("object-detector.modelschema.yaml", team)))
    kubectl.apply(manifest(deployment(team)))

    def reconciled() -> dict[str, Any] | None:
        live: dict[str, Any] = kubectl.json("get", "mdep", "cat-recognition")
        status = live.get("status") or {}
        return live if status.get("observedGeneration") == live["metadata"]["generation"] else None

    live = wait_for(reconciled, 60, "the operator to reconcile cat-recognition")
    # It got as far as the pods (which this test keeps from being scheduled): no RBAC or apply error.
    assert condition(live, "Degraded").get("reason") in ("AsExpected", "PodsFailing"), live["status"]
    # (The first rollout waits for pods: RolloutInProgress, "0/0 pods on 20240103".)
    assert condition(live, "Ready")["reason"] in ("PodsNotReady", "PodsFailing", "RolloutInProgress"), live["status"]
    for kind, name in (("configmap", "cat-recognition-model"), ("secret", "cat-recognition-admin"),
                       ("deployment", "cat-recognition"), ("service", "cat-recognition")):  # fmt: skip
        assert kubectl.run("get", kind, name, "-o", "name").stdout.strip()
    # Nothing happens in the namespace it does not serve.
    untouched = kubectl_admin.in_namespace(other).json("get", "mdep", "cat-recognition")
    assert "status" not in untouched or not untouched["status"]
    assert not kubectl_admin.in_namespace(other).run("get", "configmap", "cat-recognition-model",
                                                     "--ignore-not-found", "-o", "name").stdout.strip()  # fmt: skip
    (pod,) = operator_pods(kubectl_admin, release)
    log = pod_log(local_cluster, release.namespace, pod["metadata"]["name"])
    assert f"started (namespaces: {team}, webhooks: service)" in log
    assert "forbidden" not in log.lower(), log
