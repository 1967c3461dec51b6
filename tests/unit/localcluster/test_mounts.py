"""The mount plan: which host folder lands at which mountPath, read-only when Kubernetes says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from localcluster.mounts import Mount, plan_mounts
from localcluster.podspec import PodSpecError

VOLUMES = [{"name": "model", "configMap": {"name": "m"}}, {"name": "token", "secret": {"secretName": "t"}},
           {"name": "cache", "emptyDir": {}}, {"name": "data", "hostPath": {"path": "/srv/data"}},
           {"name": "kube-api-access-x", "projected": {"sources": []}}]
DIRS = {"model": Path("/p/volumes/model"), "token": Path("/p/volumes/token"), "cache": Path("/p/volumes/cache"),
        "data": Path("/srv/data"), "kube-api-access-x": Path("/p/volumes/kube-api-access-x")}


def plan(mounts: list[dict[str, Any]], env: dict[str, str] | None = None) -> list[Mount]:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"volumes": VOLUMES}}
    return plan_mounts(pod, {"volumeMounts": mounts}, DIRS, env or {})


def test_api_data_volumes_are_read_only_others_only_when_asked() -> None:
    mounts = plan([
        {"name": "model", "mountPath": "/etc/overseer/model"},
        {"name": "token", "mountPath": "/etc/overseer/admin", "readOnly": False},
        {"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        {"name": "cache", "mountPath": "/var/cache/overseer"},
        {"name": "data", "mountPath": "/data", "readOnly": True},
    ])
    assert {m.target: m.read_only for m in mounts} == {
        "/etc/overseer/model": True, "/etc/overseer/admin": True, "/data": True,
        "/var/run/secrets/kubernetes.io/serviceaccount": True, "/var/cache/overseer": False}
    assert Mount(Path("/srv/data"), "/data", True) in mounts


def test_parents_are_mounted_before_children_whatever_the_spec_order() -> None:
    mounts = plan([{"name": "token", "mountPath": "/etc/app/certs/"}, {"name": "model", "mountPath": "/etc/app"}])
    assert [m.target for m in mounts] == ["/etc/app", "/etc/app/certs"]


def test_sub_path_and_sub_path_expr_pick_a_part_of_the_volume() -> None:
    mounts = plan([{"name": "cache", "mountPath": "/work", "subPathExpr": "$(POD_NAME)/scratch"},
                   {"name": "model", "mountPath": "/etc/model.json", "subPath": "model.json"}],
                  env={"POD_NAME": "web-0"})
    assert [(m.source, m.target) for m in mounts] == [
        (Path("/p/volumes/cache/web-0/scratch"), "/work"), (Path("/p/volumes/model/model.json"), "/etc/model.json")]


@pytest.mark.parametrize(("mount", "message"), [
    ({"name": "cache", "mountPath": "/x", "subPath": "../../etc"}, "must be a relative path inside the volume"),
    ({"name": "cache", "mountPath": "/x", "subPath": "/etc"}, "must be a relative path inside the volume"),
    ({"name": "cache", "mountPath": "/x", "subPathExpr": "$(WHERE)"}, "must be a relative path inside the volume"),
    ({"name": "cache", "mountPath": "relative/path"}, "must be absolute"),
    ({"name": "missing", "mountPath": "/x"}, "no volume of that name"),
])
def test_bad_mounts_are_refused_with_the_volume_named(mount: dict[str, Any], message: str) -> None:
    with pytest.raises(PodSpecError, match=message):
        plan([mount], env={"WHERE": "../../root"})


def test_the_hosts_file_goes_to_etc_hosts_unless_the_container_mounts_its_own() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"volumes": VOLUMES}}
    hosts = Path("/p/hosts")
    managed = plan_mounts(pod, {"volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}, DIRS, {}, hosts)
    assert Mount(hosts, "/etc/hosts", read_only=False) in managed
    own = plan_mounts(pod, {"volumeMounts": [{"name": "model", "mountPath": "/etc/hosts", "subPath": "hosts"}]},
                      DIRS, {}, hosts)
    assert [m.source for m in own] == [Path("/p/volumes/model/hosts")]


def test_the_same_mount_path_twice_is_refused() -> None:
    with pytest.raises(PodSpecError, match="mounted twice"):
        plan([{"name": "cache", "mountPath": "/x"}, {"name": "model", "mountPath": "/x/"}])


def test_a_sub_path_through_a_symlink_out_of_its_volume_is_refused_and_a_missing_one_is_made(tmp_path: Path) -> None:
    from localcluster.nodeagent import _prepare_sub_paths

    volume = tmp_path / "volumes" / "cache"
    volume.mkdir(parents=True)
    (volume / "escape").symlink_to("/etc")  # what a pod could leave in its emptyDir before a restart
    dirs = {"cache": volume}
    with pytest.raises(PodSpecError, match="escapes its volume"):
        _prepare_sub_paths([Mount(volume / "escape", "/x", False)], dirs)
    _prepare_sub_paths([Mount(volume / "web-0" / "scratch", "/x", False), Mount(volume, "/y", False)], dirs)
    assert (volume / "web-0" / "scratch").is_dir()
