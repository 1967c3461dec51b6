#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) and helm
# from Go modules and caches the binaries under ~/.cache/schema-overseer/bin/<component>-<version>/.
# Idempotent: a second run with the binaries present does nothing.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v4.3.1}"
CACHE_ROOT="${OVERSEER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/schema-overseer}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "build-control-plane: $*" >&2; exit 1; }
# Go is needed only when something must be built: cached binaries run without it.
need_go() { command -v go >/dev/null || die "Go is not installed (need go >= 1.26 on PATH). Install it, then re-run 'make up'."; }

kube_bin="$CACHE_ROOT/bin/kube-$KUBE_VERSION"
etcd_bin="$CACHE_ROOT/bin/etcd-$ETCD_VERSION"
helm_bin="$CACHE_ROOT/bin/helm-$HELM_VERSION"

build_kube() {
  if [[ -x "$kube_bin/kube-apiserver" && -x "$kube_bin/kube-controller-manager" && -x "$kube_bin/kubectl" ]]; then return; fi
  need_go
  echo "build-control-plane: building kube-apiserver, kube-controller-manager and kubectl $KUBE_VERSION (cold: about 8 minutes on 2 cores)" >&2
  local ldflags pkg="k8s.io/component-base/version"
  ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ldflags+=" -X $pkg.gitMajor=$(echo "$KUBE_VERSION" | sed -E 's/^v([0-9]+)\..*/\1/') -X $pkg.gitMinor=$(echo "$KUBE_VERSION" | sed -E 's/^v[0-9]+\.([0-9]+)\..*/\1/')"
  rm -rf "$kube_bin.tmp" && mkdir -p "$kube_bin.tmp"
  (cd "$HERE/kube" && GOFLAGS=-mod=mod GOBIN="$kube_bin.tmp" go install -trimpath -ldflags "$ldflags" tool) \
    || die "go install of k8s.io/kubernetes $KUBE_VERSION failed (see above). A module download failure is usually transient: re-run 'make up'; the Go module cache keeps what was fetched."
  rm -rf "$kube_bin" && mv "$kube_bin.tmp" "$kube_bin"
}

build_etcd() {
  if [[ -x "$etcd_bin/etcd" ]]; then return; fi
  need_go
  echo "build-control-plane: building etcd $ETCD_VERSION" >&2
  rm -rf "$etcd_bin.tmp" && mkdir -p "$etcd_bin.tmp"
  (cd "$HERE/etcd" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$etcd_bin.tmp/etcd" go.etcd.io/etcd/server/v3) \
    || die "go build of go.etcd.io/etcd/server/v3 $ETCD_VERSION failed (see above). Re-run 'make up' to retry."
  rm -rf "$etcd_bin" && mv "$etcd_bin.tmp" "$etcd_bin"
}

build_helm() {
  if [[ -x "$helm_bin/helm" ]]; then return; fi
  need_go
  echo "build-control-plane: building helm $HELM_VERSION (cold: about 3 minutes on 2 cores)" >&2
  # helm's go.mod has no replace lines, so `go install module@version` builds it from its own
  # go.mod and go.sum (checked against the Go checksum database): no wrapper module needed.
  local pkg="helm.sh/helm/v4/internal/version"
  rm -rf "$helm_bin.tmp" && mkdir -p "$helm_bin.tmp"
  GOFLAGS= GOBIN="$helm_bin.tmp" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X $pkg.version=$HELM_VERSION -X $pkg.gitTreeState=clean" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" \
    || die "go install of helm.sh/helm/v4/cmd/helm@$HELM_VERSION failed (see above). Re-run 'make up' to retry; the Go module cache keeps what was fetched."
  rm -rf "$helm_bin" && mv "$helm_bin.tmp" "$helm_bin"
}

case "${1:-all}" in
  etcd) build_etcd ;;
  kube) build_kube ;;
  helm) build_helm ;;
  all) build_etcd; build_kube; build_helm ;;
  paths) ;;
  *) die "usage: build.sh [all|etcd|kube|helm|paths]" ;;
esac
echo "ETCD=$etcd_bin/etcd"
echo "KUBE_APISERVER=$kube_bin/kube-apiserver"
echo "KUBE_CONTROLLER_MANAGER=$kube_bin/kube-controller-manager"
echo "KUBECTL=$kube_bin/kubectl"
echo "HELM=$helm_bin/helm"
