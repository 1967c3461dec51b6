"""The cluster as schema registry, on the real local control plane: ModelSchemas applied with kubectl,
then read by `overseer validate --schemas-from-cluster`, `overseer deployment new --schema cluster:...`
and the SDK; a ServiceAccount with only get/list/watch on modelschemas (the chart's read-only
ClusterRole for CI) can do all of it, one without is refused with the forbidden line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from localcluster.stack import Stack
from overseer.manifests import Document
from overseer.sdk import ModelConfigError, SchemaLoadError, check_model_config, create_model, load_schema
from support.cluster import REPO_ROOT, Kubectl

CRDS = ("modelschemas.overseer.dev", "modeldeployments.overseer.dev")
EXAMPLES = REPO_ROOT / "examples"
# What the chart's read-only ClusterRole for CI grants (and nothing else).
READER_RULES = [{"apiGroups": ["overseer.dev"], "resources": ["modelschemas"], "verbs": ["get", "list", "watch"]}]


@pytest.fixture(scope="module")
def crds(kubectl_admin: Kubectl) -> None:
    kubectl_admin.run("apply", "-f", str(REPO_ROOT / "crds"))
    for name in CRDS:
        kubectl_admin.run("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")


def example(name: str, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    body["metadata"]["namespace"] = namespace
    return body


@pytest.fixture
def schema(crds: None, kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    """The example ModelSchema (versions 1 and 2), applied into the test's namespace."""
    body = example("object-detector.modelschema.yaml", namespace)
    kubectl.apply(yaml.safe_dump(body))
    return body


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME: no ~/.kube/config of the machine leaks into a test."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def overseer(*args: str, kubeconfig: Path | None, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The `overseer` command as a CI job runs it: its own process, KUBECONFIG from the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["HOME"] = str(home)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    command = [sys.executable, "-m", "overseer.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=False)


def deployment_file(path: Path, namespace: str | None, **custom: Any) -> Path:
    body = example("cat-recognition.modeldeployment.yaml", namespace or "-")
    if namespace is None:
        del body["metadata"]["namespace"]
    if custom:
        body["spec"]["model"]["customObjects"] = custom
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def kubeconfig_with(path: Path, stack: Stack, *, context: str, user: dict[str, Any], namespace: str) -> Path:
    """A kubeconfig for the local API server with the given credentials (and a dead second context)."""
    admin = json.loads(stack.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context,
        "clusters": [
            {"name": "local", "cluster": cluster},
            {"name": "dead", "cluster": {"server": "https://127.0.0.1:1"}},
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [
            {"name": context, "context": {"cluster": "local", "user": "u", "namespace": namespace}},
            {"name": "dead", "context": {"cluster": "dead", "user": "u"}},
        ],
    }
    path.write_text(json.dumps(config), encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def admin_kubeconfig(local_cluster: Stack, tmp_path: Path, namespace: str) -> Path:
    admin = json.loads(local_cluster.kubeconfig.read_text())
    return kubeconfig_with(
        tmp_path / "admin.kubeconfig",
        local_cluster,
        context="local",
        user=admin["users"][0]["user"],
        namespace=namespace,
    )


# --- overseer validate --schemas-from-cluster ------------------------------------------------------------


def test_deployments_are_checked_against_their_namespaces_schemas(
    schema: dict[str, Any], namespace: str, admin_kubeconfig: Path, home: Path, tmp_path: Path
) -> None:
    good = deployment_file(tmp_path / "good.yaml", namespace)
    result = overseer(
        "validate", good.name, "--schemas-from-cluster", kubeconfig=admin_kubeconfig, home=home, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "checked 1 ModelSchema and 1 ModelDeployment in 1 file: 0 errors" in result.stderr

    # Seed case 2: `conf` renamed `confidence` by the training team; the cluster's contract catches it.
    bad = deployment_file(tmp_path / "bad.yaml", namespace, confidence=0.25, resize_resolution=640)
    result = overseer(
        "validate", bad.name, "--schemas-from-cluster", kubeconfig=admin_kubeconfig, home=home, cwd=tmp_path
    )
    assert result.returncode == 1
    subject = f"bad.yaml: ModelDeployment/{namespace}/cat-recognition"
    assert result.stdout.splitlines() == [
        f"{subject}: spec.model.customObjects.conf: required property missing (expected number between 0 and 1); "
        "'confidence' is set instead",
        f"{subject}: spec.model.customObjects.confidence: not allowed; did you mean 'conf' (required)?",
    ]


def test_an_unknown_schema_says_the_cluster_was_asked(
    schema: dict[str, Any], namespace: str, admin_kubeconfig: Path, home: Path, tmp_path: Path, local_cluster: Stack
) -> None:
    path = deployment_file(tmp_path / "cat.yaml", namespace)
    path.write_text(path.read_text().replace("name: object-detector", "name: object-detectr"))
    result = overseer(
        "validate", path.name, "--schemas-from-cluster", kubeconfig=admin_kubeconfig, home=home, cwd=tmp_path
    )
    assert result.returncode == 1
    [line] = result.stdout.splitlines()
    assert line.startswith(
        f"cat.yaml: ModelDeployment/{namespace}/cat-recognition: spec.schemaRef.name: ModelSchema 'object-detectr' "
        "not found among the inputs (did you mean 'object-detector'?)"
    )
    assert line.endswith(
        f"; not on the cluster either (namespace {namespace!r}, context 'local' ({local_cluster.apiserver_url}))"
    )


def test_a_deployment_without_namespace_uses_the_contexts(
    schema: dict[str, Any], admin_kubeconfig: Path, home: Path, tmp_path: Path
) -> None:
    path = deployment_file(tmp_path / "cat.yaml", None, conf=1.5)
    result = overseer(
        "validate", path.name, "--schemas-from-cluster", kubeconfig=admin_kubeconfig, home=home, cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "cat.yaml: ModelDeployment/-/cat-recognition: spec.model.customObjects.conf: expected a value <= 1, found 1.5"
    ]


def test_a_missing_namespace_is_exit_2(
    schema: dict[str, Any], admin_kubeconfig: Path, home: Path, tmp_path: Path, local_cluster: Stack
) -> None:
    missing = f"gone-{uuid.uuid4().hex[:6]}"
    path = deployment_file(tmp_path / "cat.yaml", missing)
    result = overseer(
        "validate", path.name, "--schemas-from-cluster", kubeconfig=admin_kubeconfig, home=home, cwd=tmp_path
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"overseer: namespace {missing!r} not found on the cluster (context 'local' ({local_cluster.apiserver_url}))"
    ]


def test_context_flag_and_an_unreachable_current_context(
    schema: dict[str, Any], namespace: str, admin_kubeconfig: Path, home: Path, tmp_path: Path
) -> None:
    config = json.loads(admin_kubeconfig.read_text())
    config["current-context"] = "dead"
    admin_kubeconfig.write_text(json.dumps(config))
    path = deployment_file(tmp_path / "cat.yaml", namespace)
    result = overseer(
        "validate", path.name, "--schemas-from-cluster", kubeconfig=admin_kubeconfig, home=home, cwd=tmp_path
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "overseer: cluster unreachable: context 'dead' (https://127.0.0.1:1): connection refused"
    ]
    result = overseer(
        "validate", path.name, "--schemas-from-cluster", "--context", "local",
        kubeconfig=admin_kubeconfig, home=home, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_no_kubeconfig_is_exit_2(schema: dict[str, Any], namespace: str, home: Path, tmp_path: Path) -> None:
    path = deployment_file(tmp_path / "cat.yaml", namespace)
    result = overseer("validate", path.name, "--schemas-from-cluster", kubeconfig=None, home=home, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "overseer: no kubeconfig found (KUBECONFIG is unset, ~/.kube/config does not exist) and not running in a pod"
    ]


# --- a CI ServiceAccount: read-only RBAC, TokenRequest tokens ------------------------------------------------


@pytest.fixture
def reader_role(kubectl_admin: Kubectl) -> Iterator[str]:
    name = f"overseer-schema-reader-{uuid.uuid4().hex[:6]}"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}}
    kubectl_admin.apply(yaml.safe_dump({**role, "rules": READER_RULES}))
    try:
        yield name
    finally:
        kubectl_admin.run("delete", "clusterrole", name, "--wait=false", check=False)


def service_account_kubeconfig(
    kubectl: Kubectl, stack: Stack, namespace: str, name: str, path: Path, *, role: str | None
) -> Path:
    """A ServiceAccount (bound to `role` in `namespace` when given) and a kubeconfig with a TokenRequest token."""
    kubectl.run("create", "serviceaccount", name)
    if role is not None:
        kubectl.run("create", "rolebinding", name, f"--clusterrole={role}", f"--serviceaccount={namespace}:{name}")
    token = kubectl.run("create", "token", name, "--duration=10m").stdout.strip()
    return kubeconfig_with(path, stack, context="ci", user={"token": token}, namespace=namespace)


def test_a_reader_service_account_validates_and_cannot_write(
    schema: dict[str, Any],
    kubectl: Kubectl,
    namespace: str,
    local_cluster: Stack,
    reader_role: str,
    home: Path,
    tmp_path: Path,
) -> None:
    config = service_account_kubeconfig(kubectl, local_cluster, namespace, "ci", tmp_path / "ci", role=reader_role)
    path = deployment_file(tmp_path / "cat.yaml", namespace)
    result = overseer("validate", path.name, "--schemas-from-cluster", kubeconfig=config, home=home, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # What the role allows is exactly reading (the RBAC binding took effect, nothing more was granted).
    can = Kubectl(local_cluster.kubectl, config, namespace)
    assert can.run("auth", "can-i", "list", "modelschemas.overseer.dev").stdout.strip() == "yes"
    assert can.run("auth", "can-i", "create", "modelschemas.overseer.dev", check=False).stdout.strip() == "no"
    # The binding is per namespace: a deployment for another namespace is refused in one line.
    other = deployment_file(tmp_path / "other.yaml", "kube-system")
    result = overseer("validate", other.name, "--schemas-from-cluster", kubeconfig=config, home=home, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f'overseer: forbidden: modelschemas.overseer.dev is forbidden: User "system:serviceaccount:{namespace}:ci" '
    )


def test_a_service_account_without_the_role_is_refused_in_one_line(
    schema: dict[str, Any], kubectl: Kubectl, namespace: str, local_cluster: Stack, home: Path, tmp_path: Path
) -> None:
    config = service_account_kubeconfig(kubectl, local_cluster, namespace, "nobody", tmp_path / "nobody", role=None)
    path = deployment_file(tmp_path / "cat.yaml", namespace)
    result = overseer("validate", path.name, "--schemas-from-cluster", kubeconfig=config, home=home, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f'overseer: forbidden: modelschemas.overseer.dev is forbidden: User "system:serviceaccount:{namespace}:nobody" '
        f'cannot list resource "modelschemas" in API group "overseer.dev" in the namespace "{namespace}" '
        f"(context 'ci' ({local_cluster.apiserver_url})); reading ModelSchemas needs get and list on "
        "modelschemas.overseer.dev"
    ]


def test_a_bad_token_is_refused_credentials(
    schema: dict[str, Any], namespace: str, local_cluster: Stack, home: Path, tmp_path: Path
) -> None:
    config = kubeconfig_with(
        tmp_path / "bad", local_cluster, context="ci", user={"token": "not-a-token"}, namespace=namespace
    )
    path = deployment_file(tmp_path / "cat.yaml", namespace)
    result = overseer("validate", path.name, "--schemas-from-cluster", kubeconfig=config, home=home, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"overseer: the cluster refused the credentials of context 'ci' ({local_cluster.apiserver_url}) "
        "(401 Unauthorized): the token or certificate is invalid or expired"
    ]


# --- the SDK and deployment new with cluster:NAMESPACE/NAME#N ---------------------------------------------


def test_sdk_reads_the_schema_from_the_cluster(
    schema: dict[str, Any], namespace: str, admin_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(admin_kubeconfig))
    snapshot = load_schema(f"cluster:{namespace}/object-detector#1")
    applied = schema["spec"]["versions"][0]
    assert (snapshot.name, snapshot.version) == ("object-detector", 1)
    assert snapshot.custom_objects == applied["customObjects"]
    assert load_schema(f"cluster:{namespace}/object-detector").version == 2

    checked = check_model_config(
        f"cluster:{namespace}/object-detector#2",
        labels={"owner": "vision-team", "stage": "staging"},
        metadata={"f1": 0.9},
        custom_objects={"conf": 0.3},
    )
    assert checked.custom_objects["max_det"] == 300  # a default of the cluster's version 2
    with pytest.raises(ModelConfigError) as caught:
        check_model_config(
            f"cluster:{namespace}/object-detector#1",
            labels={"owner": "vision-team"},
            metadata={"f1": 0.9},
            custom_objects={"confidence": 0.3},
        )
    assert [p.path for p in caught.value.problems] == [
        "labels.stage",
        "customObjects.conf",
        "customObjects.confidence",
    ]
    # create_model checks before it touches BentoML: the training job fails before saving anything.
    with (
        pytest.raises(ModelConfigError),
        create_model("cat", schema=f"cluster:{namespace}/object-detector", labels={}, custom_objects={"conf": 0.3}),
    ):
        pytest.fail("create_model must not get here")


def test_sdk_cluster_errors(
    schema: dict[str, Any], namespace: str, admin_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(admin_kubeconfig))
    with pytest.raises(SchemaLoadError, match=f"ModelSchema 'nope' not found in namespace '{namespace}'"):
        load_schema(f"cluster:{namespace}/nope")
    with pytest.raises(SchemaLoadError, match="namespace 'no-such-ns' not found on the cluster"):
        load_schema("cluster:no-such-ns/object-detector")
    with pytest.raises(SchemaLoadError, match=r"has no version 9 \(versions: 1, 2\)"):
        load_schema(f"cluster:{namespace}/object-detector#9")


def test_create_model_saves_with_the_clusters_defaults(
    schema: dict[str, Any], namespace: str, admin_kubeconfig: Path, home: Path, tmp_path: Path
) -> None:
    """A training job in another repository: the cluster's contract, a BentoML store of its own."""
    script = textwrap.dedent(
        f"""
        import bentoml
        from overseer.sdk import create_model
        with create_model("cat_recognition", schema="cluster:{namespace}/object-detector#2",
                          labels={{"owner": "vision-team", "stage": "dev"}}, metadata={{"f1": 0.8}},
                          custom_objects={{"conf": 0.3}}) as model:
            open(model.path_of("model.pt"), "wb").write(b"weights")
        saved = bentoml.models.get("cat_recognition:latest")
        print(sorted(saved.custom_objects.items()))
        """
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(admin_kubeconfig),
        "HOME": str(home),
        "BENTOML_HOME": str(tmp_path / "bento"),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(
        [
            ("classes", []),
            ("conf", 0.3),
            ("iou", 0.45),
            ("max_det", 300),
            ("multi_label", False),
            ("resize_resolution", 640),
        ]
    )


def test_deployment_new_from_a_cluster_schema_is_accepted_by_the_api_server(
    schema: dict[str, Any],
    kubectl: Kubectl,
    namespace: str,
    local_cluster: Stack,
    reader_role: str,
    home: Path,
    tmp_path: Path,
) -> None:
    # The CI bot's credentials: the read-only role is enough to build the manifest.
    config = service_account_kubeconfig(kubectl, local_cluster, namespace, "bot", tmp_path / "bot", role=reader_role)
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"new weights")
    result = overseer(
        "deployment", "new", "cat-recognition", "--schema", f"cluster:{namespace}/object-detector#2",
        "--uri", "https://models.example.com/cat/20240110/model.pt", "--weights", "model.pt",
        "--model-name", "cat_recognition", "--model-version", "20240110",
        "--label", "owner=vision-team", "--label", "stage=production",
        "--metadata", "f1=0.9", "--custom-object", "conf=0.3",
        kubeconfig=config, home=home, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    body = yaml.safe_load(result.stdout)
    assert body["metadata"] == {"name": "cat-recognition", "namespace": namespace}
    assert body["spec"]["schemaRef"] == {"name": "object-detector", "version": 2}
    # The API server (CRD schema and CEL rules) takes what was printed.
    applied = kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=result.stdout, check=False)
    assert applied.returncode == 0, applied.stderr

    result = overseer(
        "deployment", "new", "cat-recognition", "--schema", f"cluster:{namespace}/object-detector#2", "-n", "elsewhere",
        "--uri", "https://models.example.com/model.pt", "--weights", "model.pt", "--model-version", "1",
        kubeconfig=config, home=home, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"overseer: the ModelDeployment goes to namespace 'elsewhere' but cluster:{namespace}/object-detector#2 is in "
        f"namespace {namespace!r}: spec.schemaRef resolves in the deployment's own namespace"
    ]


def test_in_cluster_config_reads_with_the_pods_service_account(
    schema: dict[str, Any],
    kubectl: Kubectl,
    namespace: str,
    local_cluster: Stack,
    reader_role: str,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CI runner inside the cluster: no kubeconfig, the ServiceAccount files a pod gets mounted."""
    from kubernetes.config import incluster_config
    from overseer import registry

    service_account_kubeconfig(kubectl, local_cluster, namespace, "runner", tmp_path / "unused", role=reader_role)
    mounted = tmp_path / "serviceaccount"
    mounted.mkdir()
    (mounted / "token").write_text(kubectl.run("create", "token", "runner", "--duration=10m").stdout.strip())
    (mounted / "ca.crt").write_bytes((local_cluster.dir / "certs" / "ca.crt").read_bytes())
    (mounted / "namespace").write_text(namespace)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(mounted / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(mounted / "ca.crt"))
    monkeypatch.setattr(registry, "SERVICE_ACCOUNT_NAMESPACE_FILE", mounted / "namespace")
    port = local_cluster.apiserver_url.rsplit(":", 1)[1]
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)

    with registry.connect() as cluster:
        assert (cluster.where, cluster.namespace) == (f"in-cluster config (https://127.0.0.1:{port})", namespace)
    assert load_schema(f"cluster:{namespace}/object-detector").version == 2
    # A deployment naming no namespace is matched in the pod's own namespace.
    documents = [Document("cat.yaml", 1, 1, yaml.safe_load(deployment_file(tmp_path / "cat.yaml", None).read_text()))]
    found = registry.read_cluster_schemas(documents, [])
    assert [d.source for d in found.documents] == [f"cluster:{namespace}/object-detector"]
