"""The cluster as schema registry, without a cluster: references, kubeconfig discovery, the one-line
errors for a missing kubeconfig, an unknown context, refused and silent servers, and the logic that
picks which namespaces to read. The real API server, RBAC and ServiceAccount tokens are in
tests/cluster/test_schema_registry.py."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from overseer import registry
from overseer.checks import check_documents
from overseer.manifests import Document, SchemaFileError
from overseer.sdk import SchemaLoadError, check_model_config, load_schema
from workflow_testing import DEPLOYMENT_FILE, SCHEMA_FILE, CliResult, kubeconfig

Run = Callable[..., CliResult]


# --- references -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cluster:ml-serving/object-detector", registry.ClusterReference("ml-serving", "object-detector")),
        ("cluster:ml/object-detector#2", registry.ClusterReference("ml", "object-detector", 2)),
        ("cluster:a/b.c-d", registry.ClusterReference("a", "b.c-d")),
    ],
)
def test_cluster_references_parse(text: str, expected: registry.ClusterReference) -> None:
    assert registry.parse_cluster_reference(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("cluster:object-detector", "expected cluster:NAMESPACE/NAME"),
        ("cluster:/object-detector", "expected cluster:NAMESPACE/NAME"),
        ("cluster:ml/", "expected cluster:NAMESPACE/NAME"),
        ("cluster:ML/x", "'ML' is not a namespace name"),
        ("cluster:ml/x/y", "'x/y' is not an object name"),
        ("cluster:ml/x#two", "expected FILE#N with N a version number"),
        ("cluster:" + "a" * 64 + "/x", "is not a namespace name"),
    ],
)
def test_bad_cluster_references_say_the_spelling(text: str, reason: str) -> None:
    with pytest.raises(SchemaFileError, match=reason):
        registry.parse_cluster_reference(text)


def test_a_path_object_is_always_a_file() -> None:
    assert registry.is_cluster_reference("cluster:ml/x")
    assert not registry.is_cluster_reference(Path("cluster:ml/x"))
    assert not registry.is_cluster_reference("./cluster:ml/x")


# --- kubeconfig discovery ----------------------------------------------------------------------------


def test_kubeconfig_list_keeps_existing_files_only(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "a", "https://127.0.0.1:1")
    listed = f"{tmp_path / 'missing'}:{first}"
    paths, looked = registry.kubeconfig_paths({"KUBECONFIG": listed})
    assert paths == [str(first)]
    assert looked == f"KUBECONFIG={listed}"


def test_no_kubeconfig_and_no_pod_is_one_line(no_cluster_config: Path) -> None:
    with pytest.raises(registry.ClusterAccessError) as caught:
        registry.connect()
    assert caught.value.reason == "NoConfig"
    assert str(caught.value) == (
        "no kubeconfig found (KUBECONFIG is unset, ~/.kube/config does not exist) and not running in a pod"
    )


def test_a_context_with_no_kubeconfig_names_both(no_cluster_config: Path) -> None:
    with pytest.raises(registry.ClusterAccessError, match=r"^context 'ci': no kubeconfig found \(KUBECONFIG"):
        registry.connect("ci")


def test_default_kubeconfig_in_home_is_used(no_cluster_config: Path) -> None:
    (no_cluster_config / ".kube").mkdir()
    kubeconfig(no_cluster_config / ".kube" / "config", "https://127.0.0.1:6443", namespace="ml")
    with registry.connect() as cluster:
        assert cluster.where == "context 'ci' (https://127.0.0.1:6443)"
        assert cluster.namespace == "ml"


def test_context_flag_picks_among_several(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", "https://127.0.0.1:6443")
    with registry.connect("ci", environ={"KUBECONFIG": str(path)}) as cluster:
        assert cluster.namespace == "default"  # the context names none
    with pytest.raises(registry.ClusterAccessError) as caught:
        registry.connect("prod", environ={"KUBECONFIG": str(path)})
    assert caught.value.reason == "BadConfig"
    assert str(caught.value) == f"context 'prod' not found in kubeconfig {path} (contexts: ci)"


def test_kubeconfig_without_current_context_asks_for_one(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", "https://127.0.0.1:6443")
    path.write_text(path.read_text().replace('"current-context": "ci", ', ""))
    with pytest.raises(registry.ClusterAccessError, match="has no current-context; pass --context"):
        registry.connect(environ={"KUBECONFIG": str(path)})


def test_broken_kubeconfig_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("clusters: [\n")
    with pytest.raises(registry.ClusterAccessError) as caught:
        registry.connect(environ={"KUBECONFIG": str(path)})
    assert caught.value.reason == "BadConfig"
    assert str(caught.value).startswith(f"kubeconfig {path}: ")
    assert "\n" not in str(caught.value)


def test_in_cluster_config_without_a_token_says_so(no_cluster_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # KUBERNETES_SERVICE_HOST set, but this is not a pod: the ServiceAccount token file is missing.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    with pytest.raises(registry.ClusterAccessError, match=r"^in-cluster config unusable: Service token file"):
        registry.connect()


# --- servers that fail -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never says a word (a hung API server or a black-holed proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


def test_refused_connection_is_unreachable_at_once(tmp_path: Path) -> None:
    port = free_port()
    path = kubeconfig(tmp_path / "config", f"https://127.0.0.1:{port}")
    started = time.monotonic()
    with (
        registry.connect(environ={"KUBECONFIG": str(path)}) as cluster,
        pytest.raises(registry.ClusterAccessError) as caught,
    ):
        cluster.list_schemas("ml")
    assert caught.value.reason == "Unreachable"
    assert str(caught.value) == f"cluster unreachable: context 'ci' (https://127.0.0.1:{port}): connection refused"
    assert time.monotonic() - started < 5  # no retries with back-off


def test_a_silent_server_times_out_within_the_deadline(tmp_path: Path, silent_server: int) -> None:
    path = kubeconfig(tmp_path / "config", f"https://127.0.0.1:{silent_server}")
    started = time.monotonic()
    with (
        registry.connect(environ={"KUBECONFIG": str(path)}, connect_timeout=0.5, read_timeout=0.5) as cluster,
        pytest.raises(registry.ClusterAccessError) as caught,
    ):
        cluster.list_schemas("ml")
    elapsed = time.monotonic() - started
    assert caught.value.reason == "Unreachable"
    assert str(caught.value).startswith(f"cluster unreachable: context 'ci' (https://127.0.0.1:{silent_server}): no ")
    assert "within 0.5s" in str(caught.value)
    assert elapsed < 3, elapsed  # one attempt, not the client's default retries


# --- overseer validate --schemas-from-cluster: the CLI side ---------------------------------------------


def test_validate_without_kubeconfig_exits_2_with_one_line(run_cli: Run, no_cluster_config: Path) -> None:
    result = run_cli("validate", str(DEPLOYMENT_FILE), "--schemas-from-cluster")
    assert result.code == 2
    assert result.out == ""
    assert result.err_lines == [
        "overseer: no kubeconfig found (KUBECONFIG is unset, ~/.kube/config does not exist) and not running in a pod"
    ]


def test_validate_with_an_unreachable_cluster_exits_2(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config", f"https://127.0.0.1:{port}")))
    result = run_cli("validate", str(DEPLOYMENT_FILE), "--schemas-from-cluster")
    assert (result.code, result.out) == (2, "")
    assert result.err_lines == [
        f"overseer: cluster unreachable: context 'ci' (https://127.0.0.1:{port}): connection refused"
    ]


def test_validate_with_an_unknown_context_exits_2(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = kubeconfig(tmp_path / "config", "https://127.0.0.1:1")
    monkeypatch.setenv("KUBECONFIG", str(path))
    result = run_cli("validate", str(DEPLOYMENT_FILE), "--schemas-from-cluster", "--context", "prod")
    assert result.code == 2
    assert result.err_lines == [f"overseer: context 'prod' not found in kubeconfig {path} (contexts: ci)"]


def test_context_without_schemas_from_cluster_is_a_usage_error(run_cli: Run) -> None:
    result = run_cli("validate", str(DEPLOYMENT_FILE), "--context", "ci")
    assert result.code == 2
    assert result.err_lines == ["overseer validate: --context needs --schemas-from-cluster"]


def test_validate_without_the_kubernetes_client_names_the_extra(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # `import kubernetes` now raises ImportError
    result = run_cli("validate", str(DEPLOYMENT_FILE), "--schemas-from-cluster")
    assert result.code == 2
    assert result.err_lines == [
        "overseer: reading the cluster needs the Kubernetes client: pip install 'schema-overseer[operator]'"
    ]


def test_sdk_cluster_reference_errors_are_schema_load_errors(no_cluster_config: Path) -> None:
    with pytest.raises(SchemaLoadError, match="no kubeconfig found") as caught:
        load_schema("cluster:ml-serving/object-detector#2")
    assert isinstance(caught.value.__cause__, registry.ClusterAccessError)
    assert caught.value.__cause__.reason == "NoConfig"
    with pytest.raises(SchemaLoadError, match="expected cluster:NAMESPACE/NAME"):
        check_model_config("cluster:object-detector", custom_objects={"conf": 0.2})


# --- which namespaces are read, and what shadows what ---------------------------------------------------


class FakeRegistry:
    """The listing side of ClusterRegistry (pure logic tests; the real one is tested on a cluster)."""

    def __init__(self, schemas: dict[str, list[dict[str, Any]]], namespace: str = "ml") -> None:
        self.schemas = schemas
        self.namespace = namespace
        self.where = "context 'ci' (https://127.0.0.1:6443)"
        self.listed: list[str] = []

    def list_schemas(self, namespace: str) -> list[dict[str, Any]]:
        self.listed.append(namespace)
        return self.schemas.get(namespace, [])


def schema_body(name: str, namespace: str, conf_max: float = 1.0) -> dict[str, Any]:
    section = {"type": "object", "required": ["conf"], "properties": {"conf": {"type": "number", "maximum": conf_max}}}
    return {
        "apiVersion": "overseer.dev/v1alpha1",
        "kind": "ModelSchema",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"versions": [{"version": 1, "customObjects": section}]},
    }


def deployment_doc(namespace: str | None, conf: float = 0.5, schema: str = "detector") -> Document:
    metadata = {"name": "cat", **({"namespace": namespace} if namespace else {})}
    body = {
        "apiVersion": "overseer.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": metadata,
        "spec": {
            "schemaRef": {"name": schema, "version": 1},
            "model": {
                "name": "cat",
                "version": "1",
                "uri": "file:///m.pt",
                "digest": "sha256:" + "a" * 64,
                "customObjects": {"conf": conf},
            },
        },
    }
    return Document("deploy.yaml", 1, 1, body)


def test_only_the_deployments_namespaces_are_read_default_first() -> None:
    fake = FakeRegistry({"ml": [schema_body("detector", "ml")], "b": [schema_body("detector", "b")]})
    docs = [deployment_doc("b"), deployment_doc(None), deployment_doc("b")]
    found, namespaces = registry.cluster_schema_documents(docs, [], fake)  # type: ignore[arg-type]
    assert namespaces == ["ml", "b"] == fake.listed
    assert [d.source for d in found] == ["cluster:ml/detector", "cluster:b/detector"]


def test_a_deployment_without_namespace_is_judged_by_the_default_namespaces_schema() -> None:
    # The same name in two namespaces with different limits: conf 0.7 passes only in `ml` (the context's).
    fake = FakeRegistry(
        {"ml": [schema_body("detector", "ml", 1.0)], "b": [schema_body("detector", "b", 0.5)]}, namespace="ml"
    )
    docs = [deployment_doc("b", conf=0.4), deployment_doc(None, conf=0.7)]
    found, _ = registry.cluster_schema_documents(docs, [], fake)  # type: ignore[arg-type]
    report = check_documents(docs, found)
    assert report.problems == []


def test_a_local_schema_shadows_the_clusters_copy() -> None:
    # The merge request changes the schema and the deployment together: judge against the new schema.
    fake = FakeRegistry({"ml": [schema_body("detector", "ml", conf_max=0.3), schema_body("other", "ml")]})
    local = [Document("schemas.yaml", 1, 1, schema_body("detector", "ml", conf_max=1.0))]
    docs = [deployment_doc("ml", conf=0.5)]
    found, _ = registry.cluster_schema_documents(docs, local, fake)  # type: ignore[arg-type]
    assert [d.source for d in found] == ["cluster:ml/other"]
    assert check_documents(docs, [*local, *found]).problems == []


def test_an_unresolved_reference_says_the_cluster_was_asked() -> None:
    fake = FakeRegistry({"ml": [schema_body("detector", "ml")]})
    docs = [deployment_doc("ml", schema="detectr")]
    found, _ = registry.cluster_schema_documents(docs, [], fake)  # type: ignore[arg-type]
    report = check_documents(docs, found)
    cluster = registry.ClusterSchemas(found, fake.where, fake.namespace)
    [problem] = registry.adjust_problems(report.problems, cluster)
    assert problem.path == "spec.schemaRef.name"
    assert "'detectr' not found among the inputs (did you mean 'detector'?)" in problem.message
    assert problem.message.endswith(
        "; not on the cluster either (namespace 'ml', context 'ci' (https://127.0.0.1:6443))"
    )


def test_a_broken_cluster_schema_fails_only_the_deployments_that_use_it() -> None:
    broken = schema_body("legacy", "ml")
    broken["spec"]["versions"][0]["customObjects"] = {"type": "objekt"}  # admitted before the webhook existed
    fake = FakeRegistry({"ml": [schema_body("detector", "ml"), broken]})
    docs = [deployment_doc("ml")]
    found, _ = registry.cluster_schema_documents(docs, [], fake)  # type: ignore[arg-type]
    report = check_documents(docs, found)
    assert [p.source for p in report.problems] == ["cluster:ml/legacy"]
    referenced = frozenset({"cluster:ml/detector"})
    cluster = registry.ClusterSchemas(found, fake.where, fake.namespace, referenced)
    assert registry.adjust_problems(report.problems, cluster) == []  # not this merge request's to fix

    docs = [deployment_doc("ml", schema="legacy")]
    report = check_documents(docs, found)
    cluster = registry.ClusterSchemas(found, fake.where, fake.namespace, frozenset({"cluster:ml/legacy"}))
    kept = registry.adjust_problems(report.problems, cluster)
    assert [(p.source, p.path) for p in kept] == [
        ("cluster:ml/legacy", "spec.versions[0].customObjects"),
        ("deploy.yaml", "spec.schemaRef.version"),
    ]


def test_cluster_bodies_lose_status_and_managed_fields() -> None:
    body = schema_body("detector", "ml")
    body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    body["status"] = {"kopf": {"progress": {}}, "conditions": []}  # fields our status model does not know
    clean = registry._manifest(body)
    assert "status" not in clean
    assert "managedFields" not in clean["metadata"]
    assert check_documents([Document("c", 1, 1, clean)]).problems == []


def test_resolve_schema_from_a_file_picks_the_version() -> None:
    resolved = registry.resolve_schema(f"{SCHEMA_FILE}#1")
    assert (resolved.schema.metadata.name, resolved.version.version) == ("object-detector", 1)
    assert (resolved.namespace, resolved.in_cluster) == ("ml-serving", False)
    assert resolved.body["kind"] == "ModelSchema"
    assert registry.resolve_schema(str(SCHEMA_FILE)).version.version == 2


# --- API answers the server tests cannot provoke on demand ------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "reason", "message"),
    [
        (
            404,
            '{"kind":"Status","reason":"NotFound","details":{},'
            '"message":"the server could not find the requested resource"}',
            "NoAPI",
            "the cluster has no modelschemas.overseer.dev API (context 'ci' (https://127.0.0.1:6443)): "
            "is schema-overseer installed (its CRDs)?",
        ),
        (
            500,
            '{"kind":"Status","message":"etcdserver: request timed out"}',
            "Error",
            "list modelschemas.overseer.dev in namespace 'ml' failed (context 'ci' (https://127.0.0.1:6443)): "
            "500 etcdserver: request timed out",
        ),
        (
            0,
            None,
            "Unreachable",
            "cluster unreachable: context 'ci' (https://127.0.0.1:6443): SSLError: certificate verify failed",
        ),
    ],
)
def test_api_answers_map_to_one_line(tmp_path: Path, status: int, body: str | None, reason: str, message: str) -> None:
    from kubernetes.client import ApiException

    path = kubeconfig(tmp_path / "config", "https://127.0.0.1:6443")
    error = ApiException(status=status, reason="SSLError\ncertificate verify failed" if status == 0 else "x")
    error.body = body
    with registry.connect(environ={"KUBECONFIG": str(path)}) as cluster:
        mapped = cluster._api_error(error, "list", "ml", None)
    assert (mapped.reason, str(mapped)) == (reason, message)
