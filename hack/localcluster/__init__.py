"""A real local Kubernetes control plane for tests and the demo (no Docker engine needed).

etcd + kube-apiserver + kube-controller-manager built from Go modules (hack/controlplane/build.sh),
plus a node agent standing in for kubelet and a container runtime: it runs each pod's first
container as a host process bound to its own loopback address.
"""
