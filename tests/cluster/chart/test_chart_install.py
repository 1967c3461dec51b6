"""The chart installed as a user installs it (`helm install`, then `kubectl apply -f examples/`):
the operator pod runs under its ServiceAccount with in-cluster config, the API server calls its
webhooks through their Service, it turns a ModelDeployment into serving pods under the chart's
RBAC and no more, `helm upgrade` keeps the certificate and the objects, and `helm uninstall`
leaves the CRDs and the custom resources.

One release for the module (conftest.py). The tests run in file order: the last two upgrade and
uninstall it.
"""

from __future__ import annotations

import base64
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from chart_support import (
    build_models,
    can_i,
    condition,
    example,
    manifest,
    operator_pods,
    pod_log,
    ready,
    small,
)
from cryptography import x509
from localcluster.overseer_operator import CHART, ChartRelease, wait_webhooks_reachable
from localcluster.stack import Stack
from support.argocd import modeldeployment_health
from support.cluster import REPO_ROOT, Kubectl
from support.polling import wait_for

SEED = REPO_ROOT / "examples" / "seed-story"


@pytest.fixture(scope="module")
def ml(kubectl_admin: Kubectl, release: ChartRelease) -> Iterator[Kubectl]:
    """The examples' namespace, ml-serving, with the example contract applied as a user applies it."""
    kubectl_admin.run("create", "namespace", "ml-serving")
    kubectl = kubectl_admin.in_namespace("ml-serving")
    kubectl.run("apply", "-f", str(REPO_ROOT / "examples" / "object-detector.modelschema.yaml"))
    try:
        yield kubectl
    finally:
        # Waited for: a later test may want the examples' namespace again.
        kubectl_admin.run("delete", "namespace", "ml-serving", "--timeout=180s", check=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    return build_models(tmp_path_factory.mktemp("models"), (1, 2))


@pytest.fixture(scope="module")
def serving(ml: Kubectl, models: list[tuple[str, str]]) -> dict[str, Any]:
    """The example ModelDeployment with a real model, Ready (the operator did all of it under its RBAC)."""
    uri, digest = models[0]
    body = small(example("cat-recognition.modeldeployment.yaml", ml.namespace), uri=uri, digest=digest)
    ml.apply(manifest(body))
    ml.run("wait", "--for=condition=Ready", "mdep/cat-recognition", "--timeout=240s")
    live: dict[str, Any] = ml.json("get", "mdep", "cat-recognition")
    return live


def serving_pods(ml: Kubectl) -> dict[str, dict[str, Any]]:
    pods = ml.json("get", "pods", "-l", "overseer.dev/deployment=cat-recognition")["items"]
    return {p["metadata"]["uid"]: p for p in pods if not p["metadata"].get("deletionTimestamp")}


def test_the_operator_pod_runs_under_its_service_account_with_in_cluster_config(
    local_cluster: Stack, kubectl_admin: Kubectl, release: ChartRelease
) -> None:
    (pod,) = operator_pods(kubectl_admin, release)
    assert ready(pod)
    spec = pod["spec"]
    assert spec["serviceAccountName"] == release.fullname
    container = spec["containers"][0]
    assert container["command"] == ["python", "-m", "overseer.operator"]
    assert "KUBECONFIG" not in {e["name"] for e in container.get("env", [])}
    # The token the API server projected for the pod, where in-cluster config reads it.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    log = pod_log(local_cluster, release.namespace, pod["metadata"]["name"])
    assert re.search(r"schema-overseer operator \d+\.\d+\.\d+\S* started \(namespaces: all, webhooks: service\)", log)
    assert "forbidden" not in log.lower(), log


def test_a_bad_model_deployment_is_refused_through_the_webhook_service(
    kubectl_admin: Kubectl, release: ChartRelease, ml: Kubectl
) -> None:
    config = kubectl_admin.json("get", "validatingwebhookconfiguration", release.fullname)
    secret = kubectl_admin.json("get", "secret", f"{release.fullname}-webhook-tls", "-n", release.namespace)
    for webhook in config["webhooks"]:
        # The only route the API server has: the Service (no url), trusting the chart's CA.
        assert webhook["clientConfig"]["service"] == {
            "name": f"{release.fullname}-webhook", "namespace": release.namespace,
            "path": f"/{webhook['name'].removesuffix('.overseer.dev')}", "port": 443,
        }  # fmt: skip
        assert webhook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
        assert (webhook["failurePolicy"], webhook["timeoutSeconds"]) == ("Fail", 5)

    refused = ml.run("apply", "-f", str(SEED / "case2-renamed-parameter.modeldeployment.yaml"), check=False)
    assert refused.returncode != 0
    assert 'admission webhook "validate-modeldeployment.overseer.dev" denied the request' in refused.stderr
    assert "spec.model.customObjects.confidence: not allowed; did you mean 'conf' (required)?" in refused.stderr

    refused = ml.run("apply", "-f", str(SEED / "case2-rename-conf.modelschema.yaml"), check=False)
    assert "PROPERTY_RENAMED: 'conf' looks renamed to 'confidence'" in refused.stderr

    # The operator counted both, on its metrics Service.
    metrics_ip = kubectl_admin.json("get", "service", f"{release.fullname}-metrics", "-n", release.namespace)
    url = f"http://{metrics_ip['spec']['clusterIP']}:8080/metrics"

    def denials() -> str | None:
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = str(answer.read().decode())
        found = re.search(r'overseer_admission_requests_total\{[^}]*kind="ModelDeployment"[^}]*result="denied"[^}]*\} '
                          r"([0-9.]+)", text)  # fmt: skip
        return text if found and float(found.group(1)) >= 1 else None

    wait_for(denials, 20, "the denial on the metrics Service")


def test_a_model_deployment_becomes_ready_under_the_charts_rbac(
    local_cluster: Stack, kubectl_admin: Kubectl, release: ChartRelease, ml: Kubectl, serving: dict[str, Any]
) -> None:
    assert condition(serving, "Ready")["status"] == "True"
    assert serving["status"]["model"]["version"] == "20240103"
    # The mutating webhook (through the Service) filled in the schema's defaults.
    assert serving["spec"]["model"]["customObjects"]["iou"] == 0.45
    for kind, name in (("configmap", "cat-recognition-model"), ("secret", "cat-recognition-admin"),
                       ("deployment", "cat-recognition"), ("service", "cat-recognition")):  # fmt: skip
        owner = ml.json("get", kind, name)["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["blockOwnerDeletion"]) == ("ModelDeployment", "cat-recognition",
                                                                              True)  # fmt: skip
    (pod,) = operator_pods(kubectl_admin, release)
    assert "forbidden" not in pod_log(local_cluster, release.namespace, pod["metadata"]["name"]).lower()


def test_argocd_shows_the_live_deployment_healthy(serving: dict[str, Any]) -> None:
    assert modeldeployment_health(serving)["status"] == "Healthy"
    pending = {**serving, "metadata": {**serving["metadata"], "generation": serving["metadata"]["generation"] + 1}}
    assert modeldeployment_health(pending)["status"] == "Progressing"


def test_a_new_model_is_hot_swapped_into_the_same_pods(
    ml: Kubectl, serving: dict[str, Any], models: list[tuple[str, str]]
) -> None:
    before = serving_pods(ml)
    uri, digest = models[1]
    body = small(example("seed-story/case3-new-model.modeldeployment.yaml", ml.namespace), uri=uri, digest=digest)
    ml.apply(manifest(body))

    def swapped() -> dict[str, Any] | None:
        live: dict[str, Any] = ml.json("get", "mdep", "cat-recognition")
        model = live.get("status", {}).get("model") or {}
        done = model.get("version") == "20240110" and condition(live, "Ready").get("status") == "True"
        return live if done else None

    wait_for(swapped, 240, "cat-recognition to serve 20240110")
    after = serving_pods(ml)
    assert set(after) == set(before), "the pods were replaced, not swapped"
    assert all(s["restartCount"] == 0 for p in after.values() for s in p["status"]["containerStatuses"])


def test_the_operator_may_do_its_work_and_nothing_more(
    kubectl_admin: Kubectl, release: ChartRelease, ml: Kubectl
) -> None:
    ns = ml.namespace
    allowed = [
        ("get", "secrets/cat-recognition-admin", "-n", ns),
        ("create", "deployments.apps", "-n", ns),
        ("patch", "modeldeployments.overseer.dev", "--subresource=status", "-n", ns),
        ("update", "modeldeployments.overseer.dev", "--subresource=finalizers", "-n", ns),
        ("watch", "pods", "-n", ns),
        ("create", "events", "-n", ns),
    ]
    denied = [
        ("list", "secrets", "-n", ns),  # reads the token Secrets it made, by name; never lists
        ("watch", "secrets", "-A"),
        ("list", "secrets", "-n", "kube-system"),
        ("create", "pods/exec", "-n", ns),
        ("create", "pods/portforward", "-n", ns),
        ("delete", "pods", "-n", ns),
        ("delete", "deployments.apps", "-n", ns),
        ("delete", "secrets", "-n", ns),
        ("update", "pods", "-n", ns),
        ("create", "validatingwebhookconfigurations"),
        ("patch", "mutatingwebhookconfigurations"),
        ("create", "customresourcedefinitions"),
        ("patch", "customresourcedefinitions"),
        ("create", "clusterroles"),
        ("create", "clusterrolebindings"),
        ("create", "namespaces"),
        ("delete", "namespaces"),
        ("patch", "nodes"),
        ("create", "serviceaccounts/token", "-n", ns),
        ("impersonate", "users"),
        ("escalate", "clusterroles"),
        ("*", "*"),
    ]
    assert [q for q in allowed if not can_i(kubectl_admin, release, *q)] == []
    assert [q for q in denied if can_i(kubectl_admin, release, *q)] == []
    # No wildcard anywhere in its rules.
    role = kubectl_admin.json("get", "clusterrole", f"{release.fullname}-operator")
    assert not [r for r in role["rules"] if "*" in r.get("verbs", []) + r.get("resources", []) + r.get("apiGroups", [])]


def tls_of(kubectl_admin: Kubectl, release: ChartRelease) -> tuple[str, str]:
    secret = kubectl_admin.json("get", "secret", f"{release.fullname}-webhook-tls", "-n", release.namespace)
    bundle = kubectl_admin.json("get", "validatingwebhookconfiguration", release.fullname)["webhooks"][0]
    assert bundle["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    return secret["data"]["ca.crt"], secret["data"]["tls.crt"]


def upgrade(release: ChartRelease, setting: str) -> None:
    """`helm upgrade --reuse-values --set SETTING`, as an operator of the cluster would run it."""
    release.helm("upgrade", release.name, str(CHART), "--namespace", release.namespace, "--reuse-values",
                 "--set", setting, "--wait", "--timeout", "120s")  # fmt: skip


def test_helm_upgrade_keeps_the_certificate_and_the_objects(
    kubectl_admin: Kubectl, release: ChartRelease, ml: Kubectl, serving: dict[str, Any]
) -> None:
    tls_before = tls_of(kubectl_admin, release)
    pods_before = set(serving_pods(ml))
    mdep_uid = ml.json("get", "mdep", "cat-recognition")["metadata"]["uid"]
    (operator_before,) = operator_pods(kubectl_admin, release)

    # A values change that replaces the operator pod (its environment changes).
    upgrade(release, "logFormat=json")
    wait_webhooks_reachable(release, timeout=60)
    (operator_after,) = wait_for(lambda: [p for p in operator_pods(kubectl_admin, release) if ready(p)], 60,
                                 "the new operator pod")  # fmt: skip
    assert operator_after["metadata"]["uid"] != operator_before["metadata"]["uid"]
    assert tls_of(kubectl_admin, release) == tls_before  # same CA, same certificate
    live = ml.json("get", "mdep", "cat-recognition")
    assert live["metadata"]["uid"] == mdep_uid
    assert condition(live, "Ready")["status"] == "True"
    assert set(serving_pods(ml)) == pods_before  # the serving pods never noticed
    refused = ml.run("apply", "-f", str(SEED / "case1-missing-parameter.modeldeployment.yaml"), check=False)
    assert "spec.model.customObjects.conf: required property missing" in refused.stderr

    # Within renewDaysBefore of expiry, an upgrade makes a new certificate, and the webhooks use it.
    upgrade(release, "webhook.certificate.renewDaysBefore=4000")
    renewed = tls_of(kubectl_admin, release)
    assert renewed[0] != tls_before[0] and renewed[1] != tls_before[1]
    wait_webhooks_reachable(release, timeout=90)
    # ... and the next upgrade keeps the new one.
    upgrade(release, "webhook.certificate.renewDaysBefore=30")
    assert tls_of(kubectl_admin, release) == renewed
    secret = kubectl_admin.json("get", "secret", f"{release.fullname}-webhook-tls", "-n", release.namespace)
    not_after = int(secret["metadata"]["annotations"]["overseer.dev/not-after"])
    leaf = x509.load_pem_x509_certificate(base64.b64decode(renewed[1]))
    assert abs(leaf.not_valid_after_utc.timestamp() - not_after) < 120


def test_helm_uninstall_leaves_the_crds_and_the_custom_resources(
    kubectl_admin: Kubectl, release: ChartRelease, ml: Kubectl, serving: dict[str, Any]
) -> None:
    pods_before = set(serving_pods(ml))
    release.helm("uninstall", release.name, "--namespace", release.namespace, "--wait", "--timeout", "120s")
    for crd in ("modelschemas.overseer.dev", "modeldeployments.overseer.dev"):
        annotations = kubectl_admin.json("get", "crd", crd)["metadata"]["annotations"]
        assert annotations["helm.sh/resource-policy"] == "keep"
    assert ml.json("get", "modelschema", "object-detector")["metadata"]["name"] == "object-detector"
    assert ml.json("get", "mdep", "cat-recognition")["status"]["model"]["version"] in ("20240103", "20240110")
    wait_for(lambda: not operator_pods(kubectl_admin, release), 60, "the operator pod to go")
    assert set(serving_pods(ml)) == pods_before  # still serving
    for kind, name in (("validatingwebhookconfiguration", release.fullname),
                       ("mutatingwebhookconfiguration", release.fullname),
                       ("clusterrole", f"{release.fullname}-operator"),
                       ("clusterrolebinding", f"{release.fullname}-operator")):  # fmt: skip
        assert not kubectl_admin.run("get", kind, name, "--ignore-not-found", "-o", "name").stdout.strip(), kind
    leftovers = kubectl_admin.run("get", "all,secrets,serviceaccounts,configmaps", "-n", release.namespace,
                                  "-l", f"app.kubernetes.io/instance={release.name}", "-o", "name").stdout  # fmt: skip
    assert leftovers.strip() == ""
