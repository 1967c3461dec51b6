"""The chart rendered with the stack's helm (v4, built from its Go module) for each way a user may
configure it: `helm lint`, what each values switch produces, every rendered object accepted by the
real API server (server-side dry run), typos refused by values.schema.json, and
`helm template | overseer validate -` as a GitOps CI job runs it."""

from __future__ import annotations

import ast
import io
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from chart_support import CHART, EXAMPLES, helm, kinds, one, render
from localcluster.stack import Stack
from overseer import cli
from support.cluster import REPO_ROOT, Kubectl

# The combinations a user may choose; each must lint and render objects the API server accepts.
VARIANTS = {
    "defaults": (),
    "namespaced": ("watchNamespaces={team-a,team-b}", "podDisruptionBudget.enabled=true"),
    "cert-manager": ("webhook.certManager.enabled=true", "metrics.serviceMonitor.enabled=true"),
    "cert-manager-issuer": ("webhook.certManager.enabled=true", "webhook.certManager.issuerRef.name=corp-ca",
                            "webhook.certManager.issuerRef.kind=ClusterIssuer"),
    "minimal": ("metrics.enabled=false", "rbac.aggregateClusterRoles=false", "crds.enabled=false",
                "serviceAccount.create=false", "serviceAccount.name=existing", "rbac.create=false"),
    "everything": ("schemaReader.enabled=true", "schemaReader.readNamespaces=true", "podDisruptionBudget.enabled=true",
                   "podDisruptionBudget.maxUnavailable=1", "image.registry=registry.example/ml",
                   "image.digest=sha256:" + "a" * 64, "logFormat=json", "verbose=true", "replicaCount=0"),
}  # fmt: skip
# Kinds of other projects' CRDs, which the local API server does not have.
FOREIGN = {"Certificate", "Issuer", "ServiceMonitor"}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_passes(local_cluster: Stack, variant: str) -> None:
    args = [arg for setting in VARIANTS[variant] for arg in ("--set", setting)]
    result = helm(local_cluster, "lint", str(CHART), "--strict", "--kube-version", "1.36.3", *args)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.fixture(scope="module")
def namespaces(kubectl_admin: Kubectl) -> Iterator[str]:
    """The release namespace and the watched ones: a namespaced dry run needs them to exist."""
    names = ("chart-dry-run", "team-a", "team-b")
    for name in names:
        kubectl_admin.run("create", "namespace", name)
    yield names[0]
    kubectl_admin.run("delete", "namespace", *names, "--wait=false", check=False)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_rendered_object_is_accepted_by_the_api_server(
    local_cluster: Stack, kubectl_admin: Kubectl, namespaces: str, variant: str
) -> None:
    docs = render(local_cluster, *VARIANTS[variant], namespace=namespaces)
    ours = [d for d in docs if d["kind"] not in FOREIGN]
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for doc in ours:  # kubectl applies one namespace at a time
        by_namespace.setdefault(doc["metadata"].get("namespace", namespaces), []).append(doc)
    for namespace, group in by_namespace.items():
        stream = "---\n".join(yaml.safe_dump(d) for d in group)
        result = kubectl_admin.in_namespace(namespace).run("apply", "--dry-run=server", "-f", "-", stdin=stream,
                                                           check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("(server dry run)") == len(group)


def test_defaults_render_what_the_readme_lists(local_cluster: Stack) -> None:
    docs = render(local_cluster)
    assert kinds(docs) == [
        "ClusterRole/schema-overseer-edit",
        "ClusterRole/schema-overseer-operator",
        "ClusterRole/schema-overseer-view",
        "ClusterRoleBinding/schema-overseer-operator",
        "CustomResourceDefinition/modeldeployments.overseer.dev",
        "CustomResourceDefinition/modelschemas.overseer.dev",
        "Deployment/schema-overseer",
        "MutatingWebhookConfiguration/schema-overseer",
        "Secret/schema-overseer-webhook-tls",
        "Service/schema-overseer-metrics",
        "Service/schema-overseer-webhook",
        "ServiceAccount/schema-overseer",
        "ValidatingWebhookConfiguration/schema-overseer",
    ]
    for crd in (d for d in docs if d["kind"] == "CustomResourceDefinition"):
        path = REPO_ROOT / "crds" / f"overseer.dev_{crd['spec']['names']['plural']}.yaml"
        source = yaml.safe_load(path.read_text())
        assert crd["spec"] == source["spec"]  # one source of truth
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_the_operator_deployment_is_restricted_probed_and_resourced(local_cluster: Stack) -> None:
    deployment = one(render(local_cluster), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert container["command"] == ["python", "-m", "overseer.operator"]
    assert container["image"] == "schema-overseer-operator:0.1.0"
    # The restricted Pod Security Standard, field by field.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"webhook": 9443, "metrics": 8080,
                                                                           "healthz": 8081}  # fmt: skip
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OVERSEER_WEBHOOK_MODE"] == "service"
    assert env["OVERSEER_WEBHOOK_ADDR"] == "0.0.0.0"
    assert env["OVERSEER_SERVING_IMAGE"] == "schema-overseer-serving:0.1.0"
    assert env["OVERSEER_NAMESPACES"] == ""
    # The local cluster's values: every server on the pod's own IP.
    local = one(render(local_cluster, "listenAddress=podIP"), "Deployment")["spec"]["template"]["spec"]
    local_env = {e["name"]: e.get("value") for e in local["containers"][0]["env"]}
    assert local_env["OVERSEER_WEBHOOK_ADDR"] == local_env["OVERSEER_METRICS_ADDR"] == "$(POD_IP)"


def test_watch_namespaces_grants_only_there_and_scopes_the_webhooks(local_cluster: Stack) -> None:
    docs = render(local_cluster, "watchNamespaces={team-a,team-b}")
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    cluster_role = one(docs, "ClusterRole", "schema-overseer-operator")
    assert {r["resources"][0] for r in cluster_role["rules"]} == {"namespaces", "customresourcedefinitions"}
    for config in (one(docs, "ValidatingWebhookConfiguration"), one(docs, "MutatingWebhookConfiguration")):
        for webhook in config["webhooks"]:
            assert webhook["namespaceSelector"] == {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}]}
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OVERSEER_NAMESPACES"] == "team-a,team-b"


def test_cert_manager_issues_the_certificate_and_injects_the_ca(local_cluster: Stack) -> None:
    docs = render(local_cluster, "webhook.certManager.enabled=true", namespace="ops")
    assert not [d for d in docs if d["kind"] == "Secret"]
    certificate = one(docs, "Certificate", "schema-overseer-webhook")
    assert certificate["spec"]["secretName"] == "schema-overseer-webhook-tls"
    assert "schema-overseer-webhook.ops.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"] == {"name": "schema-overseer-ca", "kind": "Issuer",
                                                "group": "cert-manager.io"}  # fmt: skip
    assert one(docs, "Certificate", "schema-overseer-ca")["spec"]["isCA"] is True
    for config in (one(docs, "ValidatingWebhookConfiguration"), one(docs, "MutatingWebhookConfiguration")):
        assert config["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": "ops/schema-overseer-webhook"}
        assert all("caBundle" not in w["clientConfig"] for w in config["webhooks"])
    given = render(local_cluster, "webhook.certManager.enabled=true", "webhook.certManager.issuerRef.name=corp",
                   "webhook.certManager.issuerRef.kind=ClusterIssuer")  # fmt: skip
    assert not [d for d in given if d["kind"] == "Issuer"]
    assert one(given, "Certificate")["spec"]["issuerRef"] == {"name": "corp", "kind": "ClusterIssuer"}


def reader_rules() -> Any:
    """READER_RULES of tests/cluster/test_schema_registry.py: the rules its tests prove CI needs."""
    tree = ast.parse((REPO_ROOT / "tests/cluster/test_schema_registry.py").read_text())
    (value,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "READER_RULES"]
    return ast.literal_eval(value)


def test_the_schema_reader_grants_what_ci_needs_and_nothing_else(local_cluster: Stack) -> None:
    docs = render(local_cluster, "schemaReader.enabled=true")
    assert one(docs, "ClusterRole", "schema-overseer-schema-reader")["rules"] == reader_rules()
    with_ns = render(local_cluster, "schemaReader.enabled=true", "schemaReader.readNamespaces=true")
    assert one(with_ns, "ClusterRole", "schema-overseer-schema-reader")["rules"] == [
        *reader_rules(), {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]


def test_the_pdb_defaults_to_min_available_one_or_takes_max_unavailable(local_cluster: Stack) -> None:
    assert one(render(local_cluster, "podDisruptionBudget.enabled=true"), "PodDisruptionBudget")["spec"][
        "minAvailable"] == 1
    spec = one(render(local_cluster, "podDisruptionBudget.enabled=true", "podDisruptionBudget.maxUnavailable=1"),
               "PodDisruptionBudget")["spec"]  # fmt: skip
    assert spec["maxUnavailable"] == 1 and "minAvailable" not in spec
    # 0 is a value (no protection), not "unset".
    assert one(render(local_cluster, "podDisruptionBudget.enabled=true", "podDisruptionBudget.minAvailable=0"),
               "PodDisruptionBudget")["spec"]["minAvailable"] == 0  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (("replicas=2",), "additional properties 'replicas' not allowed"),
        (("image.tags=1.0",), "additional properties 'tags' not allowed"),
        (("webhook.certManager.enable=true",), "additional properties 'enable' not allowed"),
        (("replicaCount=2",), "at most 1: one operator runs at a time (Kopf has no leader election"),
        (("logFormat=yaml",), "logFormat"),
        (("podDisruptionBudget.minAvailable=1", "podDisruptionBudget.maxUnavailable=1"), "podDisruptionBudget"),
    ],
)
def test_helm_refuses_typos_and_says_why(local_cluster: Stack, settings: tuple[str, ...], message: str) -> None:
    args = [arg for setting in settings for arg in ("--set", setting)]
    result = helm(local_cluster, "template", "x", str(CHART), *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.fixture
def validate(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """`... | overseer validate - ARGS`, in this process: (exit code, stdout, stderr)."""

    def run(stream: str, *args: str) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stream.encode())))
        code = cli.main(["validate", "-", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_helm_template_pipes_into_overseer_validate(local_cluster: Stack, validate: Any) -> None:
    chart = helm(local_cluster, "template", "schema-overseer", str(CHART), "--namespace", "schema-overseer").stdout
    examples = "".join(f"---\n{p.read_text()}" for p in sorted(EXAMPLES.glob("*.yaml")))
    code, out, err = validate(chart + examples)
    assert (code, out) == (0, ""), err
    documents = [d for d in yaml.safe_load_all(chart) if d]
    assert (f"checked 1 ModelSchema and 1 ModelDeployment in 1 file ({len(documents)} other objects skipped): "
            "0 errors") in err  # fmt: skip

    # A GitOps chart of ModelDeployments (examples/gitops-chart), as the CI examples run it.
    gitops = EXAMPLES / "gitops-chart"
    schemas = ("--schemas", str(EXAMPLES / "object-detector.modelschema.yaml"))
    rendered = helm(local_cluster, "template", "cat-recognition", str(gitops), "--namespace", "ml-serving").stdout
    assert validate(rendered, *schemas)[:2] == (0, "")
    broken = helm(local_cluster, "template", "cat-recognition", str(gitops), "--namespace", "ml-serving",
                  "--set", "model.customObjects.confidence=0.3").stdout  # fmt: skip
    code, out, _ = validate(broken, *schemas)
    assert code == 1
    assert out == (
        "<stdin>: ModelDeployment/ml-serving/cat-recognition: spec.model.customObjects.confidence: "
        "not allowed (allowed: classes, conf, iou, max_det, multi_label, resize_resolution)\n"
    )


def test_helm_template_is_reproducible_except_for_the_generated_certificate(local_cluster: Stack) -> None:
    def without_tls(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for doc in docs:
            if doc["kind"] == "Secret":
                doc["data"] = {}
                doc["metadata"].pop("annotations", None)
            for webhook in doc.get("webhooks", []):
                webhook["clientConfig"].pop("caBundle", None)
            if doc["kind"] == "Deployment":
                doc["spec"]["template"]["metadata"]["annotations"].pop("checksum/webhook-tls")
        return docs

    assert without_tls(render(local_cluster)) == without_tls(render(local_cluster))
