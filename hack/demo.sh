#!/usr/bin/env bash
# `make demo`: the seed story through the cluster, on the user's path. `make up` has started the
# local control plane and installed the operator with its Helm chart (`helm install`); this applies
# the examples (`kubectl apply -f examples/...`): the contract, a model served by pods that answer
# /detect, Case 1 and Case 2 refused by `kubectl apply`, and Case 3, a new model rolled into the
# running pods. Expects KUBECONFIG and the venv from the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.cluster/bin:$PWD/.venv/bin:$PATH"
PY="$PWD/.venv/bin/python"
export PYTHONPATH="$PWD/operator:$PWD/serving:$PWD/hack${PYTHONPATH:+:$PYTHONPATH}"
NS=ml-serving
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Poll a command until it succeeds or the deadline passes (no fixed sleeps).
retry() { local deadline=$((SECONDS + 30)); until "$@" 2>/dev/null; do ((SECONDS < deadline)) || { "$@"; return; }; sleep 0.5; done; }
refused() {  # refused FILE: kubectl apply must fail; print the denial (kubectl also dumps the patch)
  if kubectl apply -f "$1" 2>"$tmp/err"; then echo "  !! accepted (unexpected)"; return 1; fi
  awk '/admission webhook/ { sub(/.*admission webhook/, "admission webhook"); on = 1 } on { print "  " $0 }' "$tmp/err"
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

step "The local control plane and the operator, installed with its Helm chart"
kubectl version -o yaml | grep -E 'gitVersion' | sed 's/^/  /'
kubectl get nodes
helm list -n schema-overseer
kubectl get deployment,pods,services -n schema-overseer
kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations schema-overseer
echo "  the webhooks are called through the Service:"
kubectl get validatingwebhookconfiguration schema-overseer -o jsonpath='{range .webhooks[*]}    {.name} -> {.clientConfig.service.name}.{.clientConfig.service.namespace}.svc:{.clientConfig.service.port}{.clientConfig.service.path}{"\n"}{end}'
# The OpenAPI of a new CRD is published a moment after it is Established.
retry kubectl explain modeldeployment.spec.model > "$tmp/explain.txt"
head -8 "$tmp/explain.txt"

step "The example contract passes 'overseer validate' (what a GitOps CI job runs: examples/ci/)"
overseer validate examples/*.yaml
helm template cat-recognition examples/gitops-chart -n "$NS" | overseer validate - --schemas examples/object-detector.modelschema.yaml

step "Two models to serve: the toy shape detectors trained here (make models: red squares, blue circles)"
mkdir -p .cluster/demo
read -r _ MODEL_PATH DIGEST < <("$PY" -m overseer_devtools.models shapes-v1)
read -r _ MODEL_PATH2 DIGEST2 < <("$PY" -m overseer_devtools.models shapes-v2)
MODEL_URI="file://$MODEL_PATH"
echo "  $MODEL_URI  $DIGEST"
# The examples' uri and digest are placeholders: point them at the models just made. These detectors
# know squares and circles (not cats) and were trained on 160x160 pictures: the config says so.
toy=(-e 's#resize_resolution: .*#resize_resolution: 160#' -e 's#classes: \[cat\]#classes: [square, circle]#')
sed -e "s#uri: .*#uri: $MODEL_URI#" -e "s#digest: .*#digest: $DIGEST#" "${toy[@]}" \
  examples/cat-recognition.modeldeployment.yaml > "$tmp/cat.yaml"
sed -e "s#uri: .*#uri: file://$MODEL_PATH2#" -e "s#digest: .*#digest: $DIGEST2#" "${toy[@]}" \
  examples/seed-story/case3-new-model.modeldeployment.yaml > "$tmp/case3.yaml"

step "Apply the contract and the deployment: the operator turns it into serving pods"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
# A second run tells the story afresh (the promotion gate would refuse going back to the first model).
kubectl delete mdep cat-recognition -n "$NS" --ignore-not-found --wait --timeout=120s
kubectl apply -f examples/object-detector.modelschema.yaml
kubectl apply -f "$tmp/cat.yaml"
echo "  defaults filled in by the mutating webhook:"
kubectl get mdep cat-recognition -n "$NS" -o jsonpath='    {.spec.model.customObjects}{"\n"}'
kubectl wait --for=condition=Ready mdep/cat-recognition -n "$NS" --timeout=300s
kubectl get modelschemas,modeldeployments,deployments,services,pods -n "$NS"

step "The pods answer /detect (on their pod IPs): a held-out picture, what was drawn against what was found"
for ip in $(kubectl get pods -n "$NS" -l overseer.dev/deployment=cat-recognition -o jsonpath='{.items[*].status.podIP}'); do
  echo "  \$ python -m overseer_devtools.demo_detect call http://$ip:3000"
  "$PY" -m overseer_devtools.demo_detect call "http://$ip:3000" --out ".cluster/demo/detect-$ip.png" | sed 's/^/  /' \
    || echo "  (the detector missed a shape or saw one too many: the picture shows which)"
done

step "Case 1: a new model needs a new parameter and nobody tells prod"
echo "  the training team registers version 3 with a required 'min_box_area' - existing configs lack it:"
echo "  \$ kubectl apply -f examples/seed-story/case1-new-required-parameter.modelschema.yaml"
refused examples/seed-story/case1-new-required-parameter.modelschema.yaml
echo "  and a model config missing a parameter its schema version requires ('conf'):"
echo "  \$ kubectl apply -f examples/seed-story/case1-missing-parameter.modeldeployment.yaml"
refused examples/seed-story/case1-missing-parameter.modeldeployment.yaml

step "Case 2: 'conf' renamed 'confidence'"
echo "  \$ kubectl apply -f examples/seed-story/case2-rename-conf.modelschema.yaml"
refused examples/seed-story/case2-rename-conf.modelschema.yaml
echo "  \$ kubectl apply -f examples/seed-story/case2-renamed-parameter.modeldeployment.yaml"
refused examples/seed-story/case2-renamed-parameter.modeldeployment.yaml
echo "  the pods keep serving what was admitted:"
kubectl get mdep cat-recognition -n "$NS"

step "Case 3: a new model without a redeploy (only spec.model changes)"
pods_before=$(kubectl get pods -n "$NS" -l overseer.dev/deployment=cat-recognition -o jsonpath='{.items[*].metadata.name}')
echo "  \$ kubectl apply -f examples/seed-story/case3-new-model.modeldeployment.yaml   # with the second model's uri and digest"
kubectl apply -f "$tmp/case3.yaml"
kubectl wait --for=jsonpath='{.status.model.version}'=20240110 mdep/cat-recognition -n "$NS" --timeout=300s
kubectl wait --for=condition=Ready mdep/cat-recognition -n "$NS" --timeout=120s
pods_after=$(kubectl get pods -n "$NS" -l overseer.dev/deployment=cat-recognition -o jsonpath='{.items[*].metadata.name}')
echo "  pods before: $pods_before"
echo "  pods after:  $pods_after   (the same pods: the model was swapped in place)"
ip=$(kubectl get pods -n "$NS" -l overseer.dev/deployment=cat-recognition -o jsonpath='{.items[0].status.podIP}')
"$PY" -m overseer_devtools.demo_detect call "http://$ip:3000" --picture 1 --out ".cluster/demo/detect-after-swap.png" | sed 's/^/  /' \
  || echo "  (the detector missed a shape or saw one too many: the picture shows which)"
kubectl get mdep,pods -n "$NS"

step "Status and events"
kubectl get mdep cat-recognition -n "$NS" -o jsonpath='{range .status.conditions[*]}  {.type}={.status} ({.reason}) {.message}{"\n"}{end}'
kubectl get events -n "$NS" --field-selector involvedObject.kind=ModelDeployment

step "Done"
echo "The cluster and the operator keep running: export KUBECONFIG=$KUBECONFIG PATH=$PWD/.cluster/bin:\$PATH"
echo "Operator log: make logs POD=schema-overseer/schema-overseer; stop everything with: make down"
