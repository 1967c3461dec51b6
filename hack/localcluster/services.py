"""Services as kube-proxy and kubelet see them (pure: no sockets, no API calls).

Endpoints and EndpointSlices refuse loopback addresses, so instead of reading them the proxy works
out each Service's backends itself, as the EndpointSlice controller would: the ready, running,
not terminating pods of the Service's namespace that its selector matches, with targetPort
resolved per pod (a number, or a container port's name).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KUBERNETES = ("default", "kubernetes")  # the apiserver's own Service: no selector, no pods behind it


@dataclass(frozen=True)
class Frontend:
    """One ClusterIP:port of a Service."""

    namespace: str
    service: str
    port_name: str
    cluster_ip: str
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return (self.cluster_ip, self.port)

    def __str__(self) -> str:
        port = f":{self.port_name}" if self.port_name else ""
        return f"{self.namespace}/{self.service}{port} ({self.cluster_ip}:{self.port})"


def has_cluster_ip(service: Mapping[str, Any]) -> bool:
    """A proxied Service: a ClusterIP that is an address (not headless `None`, not ExternalName)."""
    ip = (service.get("spec") or {}).get("clusterIP") or ""
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return False
    return True


def selects(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    """A Service selector matches when every key equals; a Service without one selects nothing."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def is_serving(pod: Mapping[str, Any]) -> bool:
    """Ready, running, an IP, not terminating: what makes a pod a ready endpoint."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running" or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def target_port(service_port: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    """The pod's port for a Service port: targetPort as a number, a named container port, or `port`."""
    target = service_port.get("targetPort", service_port["port"])
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    protocol = service_port.get("protocol", "TCP")
    for container in pod["spec"].get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return int(port["containerPort"])
    return None  # the pod has no such named port: not an endpoint of this Service port


def frontends(service: Mapping[str, Any]) -> list[Frontend]:
    """The TCP ClusterIP:ports of a Service (UDP and SCTP are not proxied here)."""
    if not has_cluster_ip(service):
        return []
    meta, spec = service["metadata"], service["spec"]
    return [
        Frontend(meta["namespace"], meta["name"], p.get("name") or "", spec["clusterIP"], int(p["port"]))
        for p in spec.get("ports") or []
        if p.get("protocol", "TCP") == "TCP"
    ]


def backends(
    service: Mapping[str, Any], frontend: Frontend, pods: Iterable[Mapping[str, Any]], apiserver: tuple[str, int]
) -> list[tuple[str, int]]:
    """Where a connection to `frontend` may go, sorted so the rotation is stable."""
    if (frontend.namespace, frontend.service) == KUBERNETES:
        return [apiserver]
    spec = service["spec"]
    port_spec = next(p for p in spec["ports"] if (p.get("name") or "") == frontend.port_name)
    found = set()
    for pod in pods:
        if pod["metadata"]["namespace"] != frontend.namespace or not selects(
            spec.get("selector"), pod["metadata"].get("labels")
        ):
            continue
        if not is_serving(pod):
            continue
        port = target_port(port_spec, pod)
        if port is not None:
            found.add((pod["status"]["podIP"], port))
    return sorted(found)


def _env_name(service_name: str) -> str:
    return service_name.upper().replace("-", "_")


def service_env(
    services: Iterable[Mapping[str, Any]], namespace: str, enable_service_links: bool = True
) -> dict[str, str]:
    """The variables kubelet gives a container for Services (pkg/kubelet/envvars): always the
    `kubernetes` Service of `default` (KUBERNETES_SERVICE_HOST/PORT, what in-cluster config reads),
    and with enableServiceLinks every Service of the pod's own namespace, Docker-links style."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for service in services:
        if not has_cluster_ip(service):
            continue
        meta = service["metadata"]
        if (meta["namespace"], meta["name"]) == KUBERNETES:
            chosen.setdefault(meta["name"], service)
        elif meta["namespace"] == namespace and enable_service_links:
            chosen[meta["name"]] = service
    env: dict[str, str] = {}
    for name, service in sorted(chosen.items()):
        prefix, spec = _env_name(name), service["spec"]
        ip, ports = spec["clusterIP"], spec.get("ports") or []
        if not ports:
            continue
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(p['name'])}"] = str(p["port"])
        for i, p in enumerate(ports):
            protocol = p.get("protocol", "TCP")
            url = f"{protocol.lower()}://{ip}:{p['port']}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            port_prefix = f"{prefix}_PORT_{p['port']}_{protocol.upper()}"
            env[port_prefix] = url
            env[f"{port_prefix}_PROTO"] = protocol.lower()
            env[f"{port_prefix}_PORT"] = str(p["port"])
            env[f"{port_prefix}_ADDR"] = ip
    return env


# kubelet's own lines of a pod's /etc/hosts (pkg/kubelet/kubelet_pods.go managedHostsFileContent).
_HOSTS_HEADER = """# Kubernetes-managed hosts file (local node agent).
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
fe00::0\tip6-mcastprefix
fe00::1\tip6-allnodes
fe00::2\tip6-allrouters
"""


def pod_hostname(pod: Mapping[str, Any]) -> str:
    """spec.hostname, else the pod's name cut to a DNS label (63 characters), as kubelet does."""
    name = (pod.get("spec") or {}).get("hostname") or pod["metadata"]["name"]
    return str(name)[:63].rstrip("-.")


def hosts_file(services: Iterable[Mapping[str, Any]], namespace: str, pod_ip: str, hostname: str) -> str:
    """The pod's /etc/hosts: kubelet's lines, then every Service's ClusterIP under the names cluster DNS
    would answer (`<svc>.<ns>.svc.cluster.local`, `<svc>.<ns>.svc`, `<svc>.<ns>`, and `<svc>` in the
    pod's own namespace, standing in for its DNS search path). There is no DNS server here."""
    lines = [_HOSTS_HEADER, f"{pod_ip}\t{hostname}\n", "# Services (cluster DNS stand-in)\n"]
    for service in sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        if not has_cluster_ip(service):
            continue
        name, ns = service["metadata"]["name"], service["metadata"]["namespace"]
        names = [f"{name}.{ns}.svc.cluster.local", f"{name}.{ns}.svc", f"{name}.{ns}"]
        if ns == namespace:
            names.append(name)
        lines.append(f"{service['spec']['clusterIP']}\t{' '.join(names)}\n")
    return "".join(lines)
