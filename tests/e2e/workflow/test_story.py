"""The two teams' story end to end, as examples/workflow/README.md tells it: the real local cluster
with the operator, an S3-compatible store on loopback (moto, IAM authentication on), real serving
pods fetching their weights from it.

The serving team registers the contract (the ModelSchema) in the cluster and gives the pods
read-only store credentials through a Secret; CI gets a ServiceAccount that may only read
ModelSchemas. The training job (examples/workflow/train.py) checks its config against the cluster's
schema with that account, saves the model with the SDK and publishes the weights to the store;
the CI bot bumps the GitOps manifest (`overseer deployment new --update`), CI validates it against
the cluster (`overseer validate --schemas-from-cluster`), the deployer applies it. Model v1 comes
up on two pods; seed cases 1 and 2 fail in the training job with the SDK's message, nothing saved
or published; model v2 is swapped into the same two pods in place, under load, no request failing.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from localcluster.overseer_operator import remove_webhooks, start_operator, stop_operator
from localcluster.stack import Stack
from support.cluster import REPO_ROOT, Kubectl
from support.polling import wait_for
from workflow_support import EXAMPLE, read_env

SCHEMA_FILE = REPO_ROOT / "examples" / "object-detector.modelschema.yaml"
NAMESPACE = "ml-serving"
NAME = "cat-detector"
MANIFEST = f"gitops/deploy/{NAME}.yaml"
PORT = 3000
READY_TIMEOUT = 300  # two BentoML servers warming a YOLO network on a shared 2-core machine
SWAP_TIMEOUT = 300


@dataclass(frozen=True)
class Published:
    tag: str
    uri: str
    digest: str

    @property
    def version(self) -> str:
        return self.tag.split(":", 1)[1]


@dataclass
class Story:
    """The machines of the story, as environments: the training job's, CI's, the deployer's."""

    work: Path
    admin: Kubectl  # the deployer (Argo CD, Flux, or a person with rights in the namespace)
    base_env: dict[str, str]
    store_env: dict[str, str] = field(default_factory=dict)

    @property
    def ci_kubeconfig(self) -> Path:
        return self.work / "ci.kubeconfig"

    def run(
        self, *argv: str, kubeconfig: Path, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.base_env, "KUBECONFIG": str(kubeconfig), **(extra or {})}
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300, check=False)

    def train(self, config: str) -> subprocess.CompletedProcess[str]:
        """The training job: another repository's CI runner, with the read-only account and the
        trainer's store credentials."""
        output = self.work / "model.env"
        output.unlink(missing_ok=True)
        return self.run(
            sys.executable, str(EXAMPLE / "train.py"), "--config", str(EXAMPLE / "configs" / config),
            "--output", str(output), kubeconfig=self.ci_kubeconfig, extra=self.store_env,
        )  # fmt: skip

    def published(self) -> Published:
        values = read_env(self.work / "model.env")
        return Published(values["MODEL_TAG"], values["MODEL_URI"], values["MODEL_DIGEST"])

    def overseer(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The `overseer` command in CI, with the read-only account."""
        return self.run(sys.executable, "-m", "overseer.cli", *args, kubeconfig=self.ci_kubeconfig)


# --- the parts the story runs on ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def operator(local_cluster: Stack) -> Iterator[None]:
    start_operator(local_cluster.dir, die_with_caller=True)
    try:
        yield
    finally:
        stop_operator(local_cluster.dir)
        remove_webhooks(local_cluster.dir)  # later modules run without an operator


@pytest.fixture(scope="module")
def serving_namespace(kubectl_admin: Kubectl) -> Iterator[Kubectl]:
    kubectl_admin.run("create", "namespace", NAMESPACE)
    try:
        yield kubectl_admin.in_namespace(NAMESPACE)
    finally:
        kubectl_admin.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)


@pytest.fixture(scope="module")
def reader_role(kubectl_admin: Kubectl) -> Iterator[str]:
    """The read-only ClusterRole for CI: the chart's, if a chart test installed it in this session's
    cluster; otherwise made as docs/workflow.md says for clusters without the chart, and removed after."""
    name = "schema-overseer-schema-reader"
    if kubectl_admin.run("get", "clusterrole", name, check=False).returncode == 0:
        yield name
        return
    kubectl_admin.run(
        "create", "clusterrole", name, "--verb=get,list,watch", "--resource=modelschemas.overseer.dev"
    )  # fmt: skip
    try:
        yield name
    finally:
        kubectl_admin.run("delete", "clusterrole", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def story(
    operator: None, object_store: Path, serving_namespace: Kubectl, reader_role: str, local_cluster: Stack, work: Path
) -> Story:
    home = work / "home"  # no ~/.kube/config or ~/.aws of the machine leaks into the story
    home.mkdir()
    path = os.pathsep.join([str(local_cluster.kubectl.parent), str(Path(sys.executable).parent), os.environ["PATH"]])
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("KUBECONFIG", "BENTOML_HOME")
    }
    base_env |= {
        "HOME": str(home),
        "PATH": path,
        "BENTOML_HOME": str(work / "bentoml"),  # the training job's model store
        "BENTOML_DO_NOT_TRACK": "true",
        "YOLO_OFFLINE": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return Story(work=work, admin=serving_namespace, base_env=base_env)


# --- the story ------------------------------------------------------------------------------------------------


@pytest.mark.timeout(1200)  # a guard against a hang; the story takes a few minutes
def test_from_the_training_job_to_the_serving_pods(story: Story, jpeg: bytes) -> None:
    set_up_the_serving_side(story)

    # Model v1: trained, checked, saved, published, put into the manifest, validated, applied.
    v1 = release(story, "v1.toml")
    story.admin.run("wait", "--for=condition=Ready", f"modeldeployment/{NAME}", f"--timeout={READY_TIMEOUT}s")
    status = story.admin.json("get", "modeldeployment", NAME)["status"]
    assert status["model"] == {"name": "cat_detector", "version": v1.version, "digest": v1.digest}
    pods = serving_pods(story.admin)
    assert len(pods) == 2
    for pod in pods:  # each pod fetched v1 from the store with the Secret's read-only key
        assert served(story.admin, pod) == {"name": "cat_detector", "version": v1.version, "digest": v1.digest}
        answer = httpx.post(detect_url(pod), files={"image": ("x.jpg", jpeg, "image/jpeg")}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"]["version"] == v1.version

    # Seed cases 1 and 2 fail in the training job, with the SDK's message: nothing saved or published.
    refuse_seed_cases(story, v1)

    # Model v2 reaches the same pods in place while they answer /detect.
    before = {p["metadata"]["uid"]: p["status"]["podIP"] for p in pods}
    with Load(list(before.values()), jpeg) as load:
        v2 = release(story, "v2.toml", previous=v1)
        try:
            wait_for(lambda: swapped(story.admin, v2), SWAP_TIMEOUT, f"the operator to swap {v2.tag} into every pod")
        except AssertionError as error:
            status = story.admin.json("get", "modeldeployment", NAME).get("status") or {}
            conditions = [(c["type"], c["status"], c.get("reason"), c.get("message")) for c in status["conditions"]]
            raise AssertionError(f"{error}\nstatus.model: {status.get('model')}\nconditions: {conditions}") from None
        wait_for(lambda: load.every_client_saw(v2.version), 60, "every load client to be answered by v2")
    assert load.failures() == []
    for client, versions in enumerate(load.versions()):
        assert (versions[0], versions[-1], changes(versions)) == (v1.version, v2.version, 1), f"client {client}"

    after = serving_pods(story.admin)
    assert {p["metadata"]["uid"]: p["status"]["podIP"] for p in after} == before  # the same pods
    assert [p["status"]["containerStatuses"][0]["restartCount"] for p in after] == [0, 0]  # never restarted
    for pod in after:
        assert served(story.admin, pod) == {"name": "cat_detector", "version": v2.version, "digest": v2.digest}


def set_up_the_serving_side(story: Story) -> None:
    """What the serving team does once: the contract in the cluster, the store's credentials for the
    pods, the GitOps repository; and the read-only account for CI and training jobs."""
    admin = story.admin
    admin.run("apply", "-f", str(SCHEMA_FILE))
    admin.run("create", "secret", "generic", "model-store", f"--from-env-file={story.work / 'serving-credentials.env'}")
    admin.run("create", "configmap", "model-store", f"--from-env-file={story.work / 'store.env'}")
    shutil.copytree(EXAMPLE / "gitops", story.work / "gitops")
    trainer = story.work / "trainer.env"
    story.store_env = read_env(trainer)

    # The read-only account, with the commands docs/workflow.md gives (the ClusterRole: see reader_role).
    admin.run("create", "serviceaccount", "ci")
    admin.run(
        "create", "rolebinding", "ci-schema-reader",
        "--clusterrole=schema-overseer-schema-reader", f"--serviceaccount={NAMESPACE}:ci",
    )  # fmt: skip
    server = admin.run("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    ca_data = admin.run(
        "config", "view", "--minify", "--raw", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}"
    ).stdout
    ca = story.work / "ca.crt"
    ca.write_bytes(base64.b64decode(ca_data))
    token = admin.run("create", "token", "ci", "--duration=1h").stdout.strip()
    ci = Kubectl(admin.binary, story.ci_kubeconfig, NAMESPACE)
    for args in (
        ("config", "set-cluster", "prod", f"--server={server}", f"--certificate-authority={ca}", "--embed-certs"),
        ("config", "set-credentials", "ci", f"--token={token}"),
        ("config", "set-context", "ci", "--cluster=prod", "--user=ci", f"--namespace={NAMESPACE}"),
        ("config", "use-context", "ci"),
    ):
        run = story.run(str(admin.binary), *args, kubeconfig=story.ci_kubeconfig)
        assert run.returncode == 0, run.stderr
    assert ci.run("auth", "can-i", "list", "modelschemas.overseer.dev", check=False).stdout.strip() == "yes"
    assert ci.run("auth", "can-i", "create", "modeldeployments.overseer.dev", check=False).stdout.strip() == "no"


def release(story: Story, config: str, previous: Published | None = None) -> Published:
    """Train and publish (the training job), bump the manifest (the CI bot), validate (the merge
    request's pipeline), apply (the deployer after the merge)."""
    trained = story.train(config)
    assert trained.returncode == 0, trained.stderr
    model = story.published()
    assert model.tag.startswith("cat_detector:")
    assert model.uri == f"s3://models/cat_detector/{model.version}/model.pt"
    assert trained.stderr.splitlines()[0] == (
        "train.py: config matches object-detector version 2 (cluster:ml-serving/object-detector#2)"
    )
    assert stored_models(story)[-1] == model.version
    assert f"cat_detector/{model.version}/model.pt" in bucket_keys(story)

    manifest = story.work / MANIFEST
    before = manifest.read_text()
    bumped = story.overseer(
        "deployment", "new", NAME, "--schema", "cluster:ml-serving/object-detector#2",
        "--from-bento", model.tag, "--uri", model.uri, "--update", str(manifest),
    )  # fmt: skip
    assert bumped.returncode == 0, bumped.stderr
    was = f"cat_detector {previous.version}" if previous else "cat_detector placeholder"
    assert bumped.stderr.splitlines() == [
        f"overseer: updated {manifest}: ModelDeployment '{NAME}': model {was} -> cat_detector {model.version}"
    ]
    after = manifest.read_text()
    assert after != before
    # Only spec.model changed: the header, schemaRef and the serving team's part stay byte for byte.
    assert after[: after.index("  model:\n")] == before[: before.index("  model:\n")]
    assert after[after.index("  replicas:") :] == before[before.index("  replicas:") :]

    validated = story.overseer("validate", str(story.work / "gitops" / "deploy"), "--schemas-from-cluster")
    assert (validated.returncode, validated.stdout) == (0, ""), validated.stdout + validated.stderr

    applied = story.admin.run("apply", "-f", str(story.work / "gitops" / "deploy"), check=False)
    assert applied.returncode == 0, applied.stderr
    return model


def refuse_seed_cases(story: Story, v1: Published) -> None:
    cases = {
        "case1-missing-conf.toml": [
            "train.py: model config does not match object-detector version 2 (1 problem):",
            "  customObjects.conf: required property missing (expected number between 0 and 1)",
            "train.py: nothing trained, saved or published",
        ],
        "case2-conf-renamed.toml": [
            "train.py: model config does not match object-detector version 2 (2 problems):",
            "  customObjects.conf: required property missing (expected number between 0 and 1); "
            "'confidence' is set instead",
            "  customObjects.confidence: not allowed; did you mean 'conf' (required)?",
            "train.py: nothing trained, saved or published",
        ],
    }
    for config, message in cases.items():
        result = story.train(config)
        assert (result.returncode, result.stdout) == (1, ""), result.stderr
        assert result.stderr.splitlines() == message
        assert not (story.work / "model.env").exists()
    assert stored_models(story) == [v1.version]
    assert bucket_keys(story) == [f"cat_detector/{v1.version}/model.pt"]


# --- what a user looks at ---------------------------------------------------------------------------------------


def stored_models(story: Story) -> list[str]:
    """Versions of cat_detector in the training job's BentoML store, oldest first."""
    folder = story.work / "bentoml" / "models" / "cat_detector"
    if not folder.is_dir():
        return []
    return [p.name for p in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime) if p.is_dir()]


def bucket_keys(story: Story) -> list[str]:
    import botocore.session

    env = story.store_env
    s3 = botocore.session.Session().create_client(
        "s3",
        region_name=env["AWS_REGION"],
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    listing = s3.list_objects_v2(Bucket="models")
    return sorted(str(o["Key"]) for o in listing.get("Contents", []))


def serving_pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json("get", "pods", "-l", f"overseer.dev/deployment={NAME}")["items"]
    return sorted(items, key=lambda p: p["metadata"]["name"])


def detect_url(pod: dict[str, Any]) -> str:
    return f"http://{pod['status']['podIP']}:{PORT}/detect"


def served(kubectl: Kubectl, pod: dict[str, Any]) -> dict[str, Any]:
    """GET /admin/model on the pod, with the admin token the operator keeps in the Secret."""
    token = base64.b64decode(kubectl.json("get", "secret", f"{NAME}-admin")["data"]["token"]).decode()
    answer = httpx.get(
        f"http://{pod['status']['podIP']}:{PORT}/admin/model", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    answer.raise_for_status()
    return dict(answer.json()["model"])


def swapped(kubectl: Kubectl, model: Published) -> dict[str, Any] | None:
    body: dict[str, Any] = kubectl.json("get", "modeldeployment", NAME)
    status = body.get("status") or {}
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    done = (
        status.get("observedGeneration") == body["metadata"]["generation"]
        and (status.get("model") or {}).get("digest") == model.digest
        and ready.get("status") == "True"
    )
    return status if done else None


def changes(versions: list[str]) -> int:
    return sum(1 for a, b in itertools.pairwise(versions) if a != b)


class Load:
    """One client per pod posting /detect in a loop (a client keeps its pod, so "changes once" is per pod)."""

    def __init__(self, ips: list[str], image: bytes) -> None:
        self.ips = ips
        self.image = image
        self.answers: list[list[tuple[int, str]]] = [[] for _ in ips]
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(len(ips))]

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=f"http://{self.ips[i]}:{PORT}", timeout=60) as client:
            deadline = time.monotonic() + SWAP_TIMEOUT + 120
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    r = client.post("/detect", files={"image": ("x.jpg", self.image, "image/jpeg")})
                    self.answers[i].append((r.status_code, r.json()["model"]["version"] if r.is_success else r.text))
                except httpx.HTTPError as error:
                    self.answers[i].append((0, repr(error)))
                self.stop.wait(0.1)  # a steady trickle, not a flood: the machine has two cores

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        wait_for(lambda: all(self.answers), 60, "every load client to be answered")
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)

    def every_client_saw(self, version: str) -> bool:
        return all(any(v == version for _, v in answers) for answers in self.answers)

    def failures(self) -> list[tuple[int, str]]:
        return [a for answers in self.answers for a in answers if a[0] != 200]

    def versions(self) -> list[list[str]]:
        return [[v for _, v in answers] for answers in self.answers]


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(7).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()
