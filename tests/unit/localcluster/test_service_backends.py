"""What the service proxy forwards to, and the Service variables a container gets (kubelet's rules)."""

from __future__ import annotations

from typing import Any

from localcluster.services import (
    Frontend,
    backends,
    frontends,
    hosts_file,
    pod_hostname,
    selects,
    service_env,
    target_port,
)

APISERVER = ("127.0.0.1", 6443)


def service(name: str = "web", ns: str = "ns", selector: dict | None = None, ports: list | None = None,
            cluster_ip: str = "127.96.0.10") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "uid": f"svc-{name}"},
            "spec": {"clusterIP": cluster_ip, "selector": selector if selector is not None else {"app": "web"},
                     "ports": ports or [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


def pod(name: str, ip: str, ready: bool = True, labels: dict | None = None, ns: str = "ns",
        ports: list | None = None, deleting: bool = False, phase: str = "Running") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": name, "labels": labels or {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta,
            "spec": {"containers": [{"name": "c", "ports": ports or [{"name": "web", "containerPort": 8080}]}]},
            "status": {"phase": phase, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_a_selector_matches_when_every_label_is_equal_and_no_selector_selects_nothing() -> None:
    assert selects({"app": "web"}, {"app": "web", "tier": "x"})
    assert not selects({"app": "web", "tier": "y"}, {"app": "web", "tier": "x"})
    assert not selects({"app": "web"}, None)
    assert not selects({}, {"app": "web"})  # a Service without selector gets no endpoints made for it


def test_target_port_by_number_by_name_and_defaulting_to_port() -> None:
    p = pod("a", "127.9.0.2", ports=[{"name": "web", "containerPort": 8080}, {"name": "dns", "containerPort": 53,
                                                                               "protocol": "UDP"}])
    assert target_port({"port": 80, "targetPort": 9000}, p) == 9000
    assert target_port({"port": 80, "targetPort": "9000"}, p) == 9000
    assert target_port({"port": 80, "targetPort": "web"}, p) == 8080
    assert target_port({"port": 80}, p) == 80
    assert target_port({"port": 80, "targetPort": "metrics"}, p) is None  # no such named port on this pod
    assert target_port({"port": 53, "targetPort": "dns"}, p) is None  # named, but UDP


def test_only_ready_running_not_terminating_pods_of_the_namespace_are_backends() -> None:
    svc = service()
    pods = [
        pod("ready", "127.9.0.2"),
        pod("ready-too", "127.9.0.3"),
        pod("not-ready", "127.9.0.4", ready=False),
        pod("terminating", "127.9.0.5", deleting=True),
        pod("other-app", "127.9.0.6", labels={"app": "db"}),
        pod("other-namespace", "127.9.0.7", ns="elsewhere"),
        pod("succeeded", "127.9.0.8", phase="Succeeded"),
    ]
    (frontend,) = frontends(svc)
    assert frontend == Frontend("ns", "web", "http", "127.96.0.10", 80)
    assert backends(svc, frontend, pods, APISERVER) == [("127.9.0.2", 8080), ("127.9.0.3", 8080)]


def test_each_port_of_a_service_resolves_its_own_named_target_per_pod() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web"},
                         {"name": "metrics", "port": 9090, "targetPort": "metrics"},
                         {"name": "dns", "port": 53, "protocol": "UDP"}])
    old = pod("old", "127.9.0.2", ports=[{"name": "web", "containerPort": 8080}])
    new = pod("new", "127.9.0.3", ports=[{"name": "web", "containerPort": 3000},
                                         {"name": "metrics", "containerPort": 9100}])
    http, metrics = frontends(svc)  # UDP is not proxied
    assert backends(svc, http, [old, new], APISERVER) == [("127.9.0.2", 8080), ("127.9.0.3", 3000)]
    assert backends(svc, metrics, [old, new], APISERVER) == [("127.9.0.3", 9100)]


def test_headless_and_external_name_services_are_not_proxied_and_kubernetes_goes_to_the_apiserver() -> None:
    assert frontends(service(cluster_ip="None")) == []
    assert frontends({"metadata": {"name": "x", "namespace": "ns"}, "spec": {"type": "ExternalName"}}) == []
    kubernetes = service("kubernetes", "default", selector={}, cluster_ip="127.96.0.1",
                         ports=[{"name": "https", "port": 443, "targetPort": 6443}])
    (frontend,) = frontends(kubernetes)
    assert backends(kubernetes, frontend, [], APISERVER) == [APISERVER]


def test_service_variables_follow_kubelet() -> None:
    kubernetes = service("kubernetes", "default", selector={}, cluster_ip="127.96.0.1",
                         ports=[{"name": "https", "port": 443, "targetPort": 6443, "protocol": "TCP"}])
    web = service("model-web", "ns", ports=[{"name": "http", "port": 80}, {"name": "grpc-api", "port": 9000}])
    elsewhere = service("other", "elsewhere")
    headless = service("headless", "ns", cluster_ip="None")
    env = service_env([kubernetes, web, elsewhere, headless], "ns")
    assert env["KUBERNETES_SERVICE_HOST"] == "127.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://127.96.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "127.96.0.1"
    assert env["MODEL_WEB_SERVICE_HOST"] == "127.96.0.10"
    assert env["MODEL_WEB_SERVICE_PORT"] == "80"  # the first port
    assert env["MODEL_WEB_SERVICE_PORT_GRPC_API"] == "9000"
    assert env["MODEL_WEB_PORT_9000_TCP"] == "tcp://127.96.0.10:9000"
    assert env["MODEL_WEB_PORT_9000_TCP_PROTO"] == "tcp"
    assert not any(k.startswith(("OTHER_", "HEADLESS_")) for k in env)
    # enableServiceLinks: false keeps only the apiserver's variables (what in-cluster config needs).
    assert set(service_env([kubernetes, web], "ns", enable_service_links=False)) == {
        k for k in env if k.startswith("KUBERNETES_")}


def test_the_pods_hosts_file_names_every_service_as_cluster_dns_would() -> None:
    kubernetes = service("kubernetes", "default", selector={}, cluster_ip="127.96.0.1")
    text = hosts_file([service("web", "ns"), kubernetes, service("headless", "ns", cluster_ip="None")],
                      "ns", "127.9.0.2", "web-0")
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "127.9.0.2\tweb-0" in lines
    assert "127.96.0.1\tkubernetes.default.svc.cluster.local kubernetes.default.svc kubernetes.default" in lines
    assert "127.96.0.10\tweb.ns.svc.cluster.local web.ns.svc web.ns web" in lines  # short name: own namespace
    assert "headless" not in text


def test_a_pods_hostname_is_its_spec_hostname_or_its_name_as_a_dns_label() -> None:
    assert pod_hostname({"metadata": {"name": "web-0"}, "spec": {}}) == "web-0"
    assert pod_hostname({"metadata": {"name": "web-0"}, "spec": {"hostname": "db"}}) == "db"
    assert pod_hostname({"metadata": {"name": "a" * 62 + "-xyz"}, "spec": {}}) == "a" * 62
