"""helm (v4, built from its Go module like the control plane) installs into the local cluster."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from localcluster.stack import Stack
from support.cluster import Kubectl

Helm = Callable[..., subprocess.CompletedProcess[str]]

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: tiny\nversion: 0.1.0\nappVersion: \"1.0\"\n",
    "values.yaml": "greeting: hello\n",
    "templates/configmap.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\n"
        "  labels: {app.kubernetes.io/managed-by: {{ .Release.Service }}}\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    ),
}


@pytest.fixture
def helm(local_cluster: Stack, tmp_path: Path, namespace: str) -> Helm:
    # Helm's own state goes to the test's folder, never to the user's ~/.config/helm.
    env = {**os.environ, "KUBECONFIG": str(local_cluster.kubeconfig), "HELM_NAMESPACE": namespace,
           **{f"HELM_{kind}_HOME": str(tmp_path / f"helm-{kind.lower()}") for kind in ("CACHE", "CONFIG", "DATA")}}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(local_cluster.bin_dir / "helm"), *args], env=env, capture_output=True,
                                text=True, timeout=120, check=False)
        assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"
        return result

    return run


def test_helm_is_v4_from_the_stack_bin_folder(helm: Helm) -> None:
    assert helm("version", "--short").stdout.startswith("v4.3.1")


def test_helm_installs_and_uninstalls_a_chart(helm: Helm, kubectl: Kubectl, tmp_path: Path) -> None:
    chart = tmp_path / "tiny"
    for name, text in CHART.items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    helm("lint", str(chart))
    helm("install", "demo", str(chart), "--set", "greeting=hi from helm", "--wait", "--timeout", "60s")
    settings = kubectl.json("get", "configmap", "demo-settings")
    assert settings["data"] == {"greeting": "hi from helm"}
    assert settings["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert "deployed" in helm("status", "demo").stdout
    helm("uninstall", "demo", "--wait")
    assert kubectl.run("get", "configmap", "demo-settings", check=False).returncode != 0
    assert "demo" not in helm("list", "-q").stdout.split()
