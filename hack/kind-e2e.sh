#!/usr/bin/env bash
# End to end on a kind cluster, for a user with Docker and kind: create the cluster, build lsml's
# images from the repository's Dockerfiles (official bases), `kind load` them, then run the shared
# cluster half, hack/cluster-e2e.sh (helm install the operator, apply the minimal example with the
# text_classifier image, wait for Ready, ask /health through the API server). CI runs that same
# cluster half on the harness's real node (tests/realnode/test_cluster_e2e_script.py); kind itself
# is not on the CI machine (its node image comes from a registry).
# Usage: hack/kind-e2e.sh [cluster-name]   (needs docker, kind, kubectl, helm)
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
docker build --build-arg "LSML_IMAGE=lsml/runtime:$tag" -t "lsml/text-classifier:$tag" examples/text_classifier
kind load docker-image --name "$name" "lsml/operator:$tag" "lsml/text-classifier:$tag"

hack/cluster-e2e.sh "lsml/operator:$tag" "lsml/text-classifier:$tag" default
echo "kind-e2e: clean up with: kind delete cluster --name $name"
