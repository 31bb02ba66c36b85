#!/usr/bin/env bash
# The cluster half of the end-to-end path, on whatever cluster the current kubeconfig names, with
# images the cluster's nodes already hold (no registry is needed): helm install the operator chart,
# apply examples/mlbackend-minimal.yaml with the given backend image, wait for Ready=True, and ask
# the backend's /health through the API server's service proxy. hack/kind-e2e.sh runs it after
# `kind load`; tests/realnode/test_cluster_e2e_script.py runs it on the harness's real node.
#
# Usage: hack/cluster-e2e.sh OPERATOR_IMAGE BACKEND_IMAGE [NAMESPACE]
#   OPERATOR_IMAGE  e.g. lsml/operator:e2e-abc123 (chart image.repository:image.tag)
#   BACKEND_IMAGE   an image with a backend in /app, e.g. lsml/text-classifier:e2e-abc123
#                   (the bare runtime image has no model: its pods would crash-loop)
#   NAMESPACE       where the MLBackend goes (default: lsml-e2e; created if absent)
# Env: PULL_POLICY (default Never: images were loaded into the nodes), TIMEOUT (default 300s).
# The operator release is `lsml-operator` in lsml-system; an existing release keeps its other values.
# Leaves the backend running; `kubectl delete namespace NAMESPACE` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '8,15p' "$0" >&2; exit 2; }
operator_image="$1" backend_image="$2" ns="${3:-lsml-e2e}"
pull="${PULL_POLICY:-Never}" timeout="${TIMEOUT:-300s}"
name=text-classifier-minimal
for tool in kubectl helm; do
  command -v "$tool" >/dev/null || { echo "cluster-e2e: $tool is required" >&2; exit 1; }
done
case "$operator_image" in *:*) ;; *) echo "cluster-e2e: OPERATOR_IMAGE needs a tag: $operator_image" >&2; exit 2;; esac

helm upgrade --install lsml-operator charts/lsml-operator -n lsml-system --create-namespace --reuse-values \
  --set image.repository="${operator_image%:*}" --set image.tag="${operator_image##*:}" \
  --set image.pullPolicy="$pull" --wait --timeout "$timeout"

kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
sed -e "s#^\(  image:\).*#\1 $backend_image#" examples/mlbackend-minimal.yaml | kubectl apply -n "$ns" -f -
kubectl -n "$ns" patch mlb "$name" --type=merge -p "{\"spec\":{\"imagePullPolicy\":\"$pull\"}}"
if ! kubectl -n "$ns" wait "mlb/$name" --for=condition=Ready --timeout="$timeout"; then
  kubectl -n "$ns" get mlb "$name" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}' >&2
  exit 1
fi
kubectl -n "$ns" get mlb,deploy,svc,pods -l "app.kubernetes.io/instance=$name"
health="$(kubectl get --raw "/api/v1/namespaces/$ns/services/$name:http/proxy/health")"
echo "cluster-e2e: $name /health: $health"
case "$health" in *'"status"'*'"UP"'*) ;; *) echo "cluster-e2e: unexpected /health answer" >&2; exit 1;; esac
echo "cluster-e2e: Ready"
