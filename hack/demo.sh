#!/usr/bin/env bash
# `make demo`: the local cluster (already started by `make up`), the CRDs, the example contract,
# and what the contract catches. Expects KUBECONFIG and the venv from the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.cluster/bin:$PWD/.venv/bin:$PATH"
# Poll a command until it succeeds or the deadline passes (no fixed sleeps).
retry() { local deadline=$((SECONDS + 30)); until "$@" 2>/dev/null; do ((SECONDS < deadline)) || { "$@"; return; }; sleep 0.5; done; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "The local control plane"
kubectl version -o yaml | grep -E 'gitVersion' | sed 's/^/  /'
kubectl get nodes -o wide

step "CRDs generated from the Python API models"
kubectl apply -f crds/
kubectl wait --for=condition=Established crd/modelschemas.overseer.dev crd/modeldeployments.overseer.dev --timeout=30s
# The OpenAPI of a new CRD is published a moment after it is Established.
retry kubectl explain modeldeployment.spec.model > "${TMPDIR:-/tmp}/explain.txt"
head -20 "${TMPDIR:-/tmp}/explain.txt"

step "The example contract passes 'overseer validate' (what a GitOps CI job runs)"
overseer validate examples/
kubectl create namespace ml-serving --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f examples/
kubectl get modelschemas,modeldeployments -n ml-serving

step "A deployment that renamed 'conf' to 'confidence' is caught before it reaches the cluster"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed 's/\bconf:/confidence:/' examples/cat-recognition.modeldeployment.yaml > "$tmp/renamed.yaml"
overseer validate "$tmp/renamed.yaml" --schemas examples/ || echo "  -> exit $? (rejected)"

step "Done"
echo "The cluster keeps running: export KUBECONFIG=$KUBECONFIG PATH=$PWD/.cluster/bin:\$PATH"
echo "Stop it with: make down"
