"""The control-plane build script's failure messages say what failed and how to retry."""

from __future__ import annotations

import subprocess
from pathlib import Path

BUILD = Path(__file__).resolve().parents[3] / "hack" / "controlplane" / "build.sh"


def test_missing_go_is_named_with_what_to_do(tmp_path: Path) -> None:
    result = subprocess.run(
        ["/bin/bash", str(BUILD), "all"], capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OVERSEER_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 1
    assert "Go is not installed (need go >= 1.26 on PATH)" in result.stderr
    assert "re-run 'make up'" in result.stderr


def test_cached_binaries_are_not_rebuilt(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for component, names in (("etcd-v3.6.16", ["etcd"]),
                             ("kube-v1.36.3", ["kube-apiserver", "kube-controller-manager", "kubectl"]),
                             ("helm-v4.3.1", ["helm"])):
        for name in names:
            binary = cache / "bin" / component / name
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\n")
            binary.chmod(0o755)
    result = subprocess.run(
        ["/bin/bash", str(BUILD), "all"], capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OVERSEER_CACHE": str(cache)},  # no Go needed
    )
    assert result.returncode == 0, result.stderr
    assert "building" not in result.stderr  # nothing rebuilt
    assert f"KUBECTL={cache}/bin/kube-v1.36.3/kubectl" in result.stdout
    assert f"HELM={cache}/bin/helm-v4.3.1/helm" in result.stdout


def test_helm_is_built_from_its_own_module_at_the_pinned_version() -> None:
    # helm's go.mod has no replace lines, so `go install module@version` is reproducible from its
    # own go.sum; a replace line upstream would make this fail loudly, not build something else.
    script = BUILD.read_text()
    assert 'HELM_VERSION="${HELM_VERSION:-v4.3.1}"' in script
    assert '"helm.sh/helm/v4/cmd/helm@$HELM_VERSION"' in script
    assert "all) build_etcd; build_kube; build_helm ;;" in script
