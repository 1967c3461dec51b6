#!/usr/bin/env bash
# `make demo`: the seed story through the cluster. `make up` has started the local control plane
# and the operator (webhooks registered); this applies the example contract, brings a model up in
# serving pods that answer /detect, and shows Case 1 and Case 2 refused by `kubectl apply`.
# Expects KUBECONFIG and the venv from the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.cluster/bin:$PWD/.venv/bin:$PATH"
PY="$PWD/.venv/bin/python"
NS=ml-serving
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Poll a command until it succeeds or the deadline passes (no fixed sleeps).
retry() { local deadline=$((SECONDS + 30)); until "$@" 2>/dev/null; do ((SECONDS < deadline)) || { "$@"; return; }; sleep 0.5; done; }
refused() {  # refused FILE: kubectl apply must fail; print the denial (kubectl also dumps the patch)
  if kubectl apply -f "$1" 2>"$tmp/err"; then echo "  !! accepted (unexpected)"; return 1; fi
  awk '/admission webhook/ { sub(/.*admission webhook/, "admission webhook"); on = 1 } on { print "  " $0 }' "$tmp/err"
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

step "The local control plane and the operator"
kubectl version -o yaml | grep -E 'gitVersion' | sed 's/^/  /'
kubectl get nodes
"$PY" -m localcluster.overseer_operator status --dir .cluster
kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations schema-overseer
# The OpenAPI of a new CRD is published a moment after it is Established.
retry kubectl explain modeldeployment.spec.model > "$tmp/explain.txt"
head -8 "$tmp/explain.txt"

step "The example contract passes 'overseer validate' (what a GitOps CI job runs)"
overseer validate examples/

step "A model to serve: a small YOLO network built offline from Ultralytics' bundled yaml"
mkdir -p .cluster/demo
DIGEST=$("$PY" - <<'EOF'
from pathlib import Path
from overseer_devtools.toymodels import build_detector
print(build_detector(Path(".cluster/demo/cat-20240103.pt").resolve(), seed=1, names=["cat", "dog", "bird"]))
EOF
)
MODEL_URI="file://$PWD/.cluster/demo/cat-20240103.pt"
echo "  $MODEL_URI  $DIGEST"
sed -e "s#uri: .*#uri: $MODEL_URI#" -e "s#digest: .*#digest: $DIGEST#" \
  examples/cat-recognition.modeldeployment.yaml > "$tmp/cat.yaml"

step "Apply the contract and the deployment: the operator turns it into serving pods"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f examples/object-detector.modelschema.yaml
kubectl apply -f "$tmp/cat.yaml"
echo "  defaults filled in by the mutating webhook:"
kubectl get mdep cat-recognition -n "$NS" -o jsonpath='    {.spec.model.customObjects}{"\n"}'
kubectl wait --for=condition=Ready mdep/cat-recognition -n "$NS" --timeout=300s
kubectl get modelschemas,modeldeployments,deployments,services,pods -n "$NS"

step "The pods answer /detect (on their pod IPs)"
for ip in $(kubectl get pods -n "$NS" -l overseer.dev/deployment=cat-recognition -o jsonpath='{.items[*].status.podIP}'); do
  "$PY" - "$ip" <<'EOF'
import io, sys
import httpx, numpy as np
from PIL import Image
buf = io.BytesIO()
Image.fromarray(np.random.default_rng(7).integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(buf, "JPEG")
answer = httpx.post(f"http://{sys.argv[1]}:3000/detect", files={"image": ("x.jpg", buf.getvalue(), "image/jpeg")}, timeout=60)
body = answer.json()
print(f"  {sys.argv[1]}: HTTP {answer.status_code}, {len(body['detections'])} detections by "
      f"{body['model']['name']} {body['model']['version']}")
EOF
done

step "Case 1: a new model needs a new parameter and nobody tells prod"
echo "  the training team registers version 3 with a required 'min_box_area' - existing configs lack it:"
"$PY" - > "$tmp/case1-schema.yaml" <<'EOF'
import copy, yaml
schema = yaml.safe_load(open("examples/object-detector.modelschema.yaml"))
v3 = copy.deepcopy(schema["spec"]["versions"][-1])
v3.update(version=3, description="needs min_box_area")
v3["customObjects"]["properties"]["min_box_area"] = {"type": "integer", "minimum": 0}
v3["customObjects"]["required"] = ["conf", "min_box_area"]
schema["spec"]["versions"].append(v3)
print(yaml.safe_dump(schema, sort_keys=False))
EOF
refused "$tmp/case1-schema.yaml"
echo "  and a model config missing a parameter its schema version requires ('conf'):"
grep -v '^ *conf:' "$tmp/cat.yaml" > "$tmp/case1.yaml"
refused "$tmp/case1.yaml"

step "Case 2: 'conf' renamed 'confidence' in the model's config"
sed 's/\bconf:/confidence:/' "$tmp/cat.yaml" > "$tmp/case2.yaml"
refused "$tmp/case2.yaml"
echo "  the pods keep serving what was admitted:"
kubectl get mdep cat-recognition -n "$NS"

step "Status and events"
kubectl get mdep cat-recognition -n "$NS" -o jsonpath='{range .status.conditions[*]}  {.type}={.status} ({.reason}) {.message}{"\n"}{end}'
kubectl get events -n "$NS" --field-selector involvedObject.kind=ModelDeployment

step "Done"
echo "The cluster and the operator keep running: export KUBECONFIG=$KUBECONFIG PATH=$PWD/.cluster/bin:\$PATH"
echo "Operator log: .cluster/logs/operator.log; stop everything with: make down"
