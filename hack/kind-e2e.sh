#!/usr/bin/env bash
# End to end on a real cluster with Docker (not runnable in CI here: no container runtime):
# kind cluster -> build + load both images -> helm install the operator -> apply the example ->
# wait for Ready. Usage: hack/kind-e2e.sh [cluster-name]   (needs docker, kind, kubectl, helm)
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:-lsml-e2e}"
tag="e2e-$(git rev-parse --short HEAD 2>/dev/null || echo dev)"

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required" >&2; exit 1; }
done

kind get clusters | grep -qx "$name" || kind create cluster --name "$name" --wait 120s
kubectl config use-context "kind-$name"

docker build --target runtime -t "lsml/runtime:$tag" .
docker build --target operator -t "lsml/operator:$tag" .
kind load docker-image --name "$name" "lsml/runtime:$tag" "lsml/operator:$tag"

helm upgrade --install lsml-operator charts/lsml-operator -n lsml-system --create-namespace \
  --set image.tag="$tag" --set image.pullPolicy=Never --wait --timeout 5m

# The minimal example (no Label Studio needed), with the image just built. The runtime image's
# default backend dir must hold a model; kind's default StorageClass provisions claims.
sed -e "s#lsml/runtime:latest#lsml/runtime:$tag#" examples/mlbackend-minimal.yaml \
  | kubectl apply -n default -f -
kubectl -n default patch mlb text-classifier-minimal --type=merge -p '{"spec":{"imagePullPolicy":"Never"}}'
kubectl -n default wait mlb/text-classifier-minimal --for=condition=Ready --timeout=5m
kubectl -n default get mlb,deploy,svc,pods -l app.kubernetes.io/instance=text-classifier-minimal
echo "kind-e2e: Ready. Clean up with: kind delete cluster --name $name"
