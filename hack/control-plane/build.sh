#!/usr/bin/env bash
# Builds the pinned local Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok, helm) and the real
# node's parts (kubelet, kube-proxy, crictl, CoreDNS, local-path-provisioner) from the Go
# module proxy into ~/.cache/lsml/k8s-<version>/bin and prints that dir as the
# LAST line of stdout. Everything else goes to stderr. Reuses the cache when its
# manifest matches versions.env and every binary is present.
#
# Env: LSML_CACHE_DIR (default ~/.cache/lsml), LSML_K8S_FORCE_REBUILD=1.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

log() { echo "[control-plane/build] $*" >&2; }
die() { echo "[control-plane/build] ERROR: $*" >&2; exit 1; }


cache_root="${LSML_CACHE_DIR:-$HOME/.cache/lsml}"
root="$cache_root/k8s-$K8S_VERSION"
bin="$root/bin"
manifest="$root/manifest"
stages="$root/share/kwok/stages.yaml"   # kwok's default node/pod stages, as kwokctl uses them
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kwok helm crictl coredns local-path-provisioner)
kube_binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)

expected_manifest() {
  printf 'K8S_VERSION=%s\nETCD_VERSION=%s\nKWOK_VERSION=%s\nHELM_VERSION=%s\nCRI_TOOLS_VERSION=%s\nCOREDNS_VERSION=%s\nLOCAL_PATH_PROVISIONER_VERSION=%s\nBINARIES=%s\n' \
    "$K8S_VERSION" "$ETCD_VERSION" "$KWOK_VERSION" "$HELM_VERSION" "$CRI_TOOLS_VERSION" "$COREDNS_VERSION" \
    "$LOCAL_PATH_PROVISIONER_VERSION" "${binaries[*]}"
}

cache_complete() {
  [[ -f "$manifest" ]] || return 1
  [[ "$(cat "$manifest")" == "$(expected_manifest)" ]] || return 1
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
  [[ -s "$stages" ]] || return 1
}

# One build at a time per version (two test runs starting together wait for each other).
mkdir -p "$cache_root"
exec 9>"$cache_root/k8s-$K8S_VERSION.lock"
if command -v flock >/dev/null 2>&1; then
  flock -n 9 || { log "another build.sh holds $cache_root/k8s-$K8S_VERSION.lock; waiting"; flock 9; }
fi

if [[ "${LSML_K8S_FORCE_REBUILD:-0}" != 1 ]] && cache_complete; then
  log "cache complete: $bin (k8s $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION)"
  echo "$bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "go is not installed (needed to build the control plane binaries)"
# Kubernetes 1.36, kwok 0.8 and helm 3.22 declare `go 1.26.0`.
gover="$(go env GOVERSION)"; gover="${gover#go}"
if [[ "${GOTOOLCHAIN:-local}" == local ]] && ! printf '1.26.0\n%s\n' "$gover" | sort -V -C; then
  die "Go $gover is too old: these versions need Go >= 1.26 (or set GOTOOLCHAIN=go1.26.8 to let go fetch it)"
fi

start=$(date +%s)
log "building k8s $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION into $bin"
log "this takes a long time on a cold cache (tens of minutes on 2 cores)"
rm -f "$manifest"
mkdir -p "$bin" "$root/src" "$cache_root/go"

# Self-contained Go environment: module and build caches live under the cache dir.
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$cache_root/go/mod}"
export GOCACHE="${GOCACHE_OVERRIDE:-$cache_root/go/build}"
export GOFLAGS="-trimpath -modcacherw -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOWORK=off
export GO111MODULE=on

step=""
trap 'rc=$?; if [[ $rc -ne 0 ]]; then echo "[control-plane/build] ERROR: step \"$step\" failed (exit $rc); see the go output above" >&2; fi' EXIT

# new_wrapper NAME: a fresh wrapper module dir (generated, never committed).
new_wrapper() {
  local dir="$root/src/$1"
  rm -rf "$dir"; mkdir -p "$dir"
  echo "$dir"
}

# write_tools DIR PKG...: a tools.go that imports the main packages, so that
# `go mod tidy` resolves their whole dependency graph.
write_tools() {
  local dir="$1"; shift
  { echo '//go:build tools'; echo; echo 'package tools'; echo; echo 'import ('
    local p; for p in "$@"; do echo "	_ \"$p\""; done
    echo ')'; } > "$dir/tools.go"
}

timed() { # timed LABEL CMD...
  local t0=$(date +%s); step="$1"; shift
  log "$step ..."
  "$@" >&2
  log "$step done in $(( $(date +%s) - t0 ))s"
}

# build_module NAME GO MODULE VERSION PACKAGE [LDFLAGS]: bin/NAME from PACKAGE of MODULE@VERSION, built
# in a generated wrapper module (go directive GO) whose tools.go pulls the package's whole graph.
build_module() {
  local name="$1" godir="$2" module="$3" version="$4" pkg="$5" ldflags="${6:-}"
  local d; d="$(new_wrapper "$name")"
  printf 'module lsml.local/controlplane/%s\n\ngo %s\n\nrequire %s %s\n' "$name" "$godir" "$module" "$version" > "$d/go.mod"
  write_tools "$d" "$pkg"
  (cd "$d" && go mod tidy && go build -ldflags="-s -w $ldflags" -o "$bin/$name.new" "$pkg") \
    && mv "$bin/$name.new" "$bin/$name"
}

# ---- etcd ------------------------------------------------------------------
build_etcd() {
  build_module etcd 1.25.0 go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3
}

# ---- kubernetes -------------------------------------------------------------
build_kubernetes() {
  local d; d="$(new_wrapper kubernetes)"
  local kver="${K8S_VERSION#v}"             # 1.36.3
  local major="${kver%%.*}" rest="${kver#*.}"
  local minor="${rest%%.*}" patch="${rest#*.}"
  local staging_ver="v0.$minor.$patch"     # staging modules are tagged v0.X.Y for v1.X.Y
  # The staging list comes from the pinned k8s.io/kubernetes go.mod itself.
  local kmod
  kmod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  [[ -f "$kmod" ]] || { echo "could not download k8s.io/kubernetes@$K8S_VERSION" >&2; return 1; }
  local staging
  staging="$(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$kmod")"
  [[ -n "$staging" ]] || { echo "no staging replaces found in $kmod" >&2; return 1; }
  local godir; godir="$(awk '$1 == "go" {print $2; exit}' "$kmod")"
  {
    echo "module lsml.local/controlplane/kubernetes"
    echo
    echo "go $godir"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    local m; for m in $staging; do echo "	$m => $m $staging_ver"; done
    echo ")"
  } > "$d/go.mod"
  local pkgs=() b
  for b in "${kube_binaries[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  write_tools "$d" "${pkgs[@]}"
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local ld="-s -w" key val
  for kv in "gitVersion=$K8S_VERSION" "gitMajor=$major" "gitMinor=$minor" "gitTreeState=clean" "buildDate=$date"; do
    key="${kv%%=*}"; val="${kv#*=}"
    ld+=" -X k8s.io/client-go/pkg/version.$key=$val -X k8s.io/component-base/version.$key=$val"
  done
  mkdir -p "$d/out"
  # One go build for all of them so the shared packages compile once.
  (cd "$d" && go mod tidy && go build -ldflags="$ld" -o "$d/out/" "${pkgs[@]}") || return 1
  for b in "${kube_binaries[@]}"; do mv "$d/out/$b" "$bin/$b"; done
}

# ---- kwok ------------------------------------------------------------------
build_kwok() {
  build_module kwok 1.26.0 sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
}

# ---- helm ------------------------------------------------------------------
build_helm() {
  build_module helm 1.26.0 helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
}

# ---- crictl (the real node's CRI client: `down` removes every pod sandbox with it) ----
build_crictl() {
  build_module crictl 1.26.0 sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools/cmd/crictl \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION"
}

# ---- CoreDNS (cluster DNS for the real node's pods) -----------------------------
build_coredns() {
  build_module coredns 1.26.0 github.com/coredns/coredns "$COREDNS_VERSION" github.com/coredns/coredns
}

# ---- local-path-provisioner (the dynamic provisioner kind ships) ---------------
build_local_path_provisioner() {
  build_module local-path-provisioner 1.26.0 github.com/rancher/local-path-provisioner \
    "$LOCAL_PATH_PROVISIONER_VERSION" github.com/rancher/local-path-provisioner
}

have_all() { local b; for b in "$@"; do [[ -x "$bin/$b" ]] || return 1; done; [[ "${LSML_K8S_FORCE_REBUILD:-0}" != 1 ]]; }

only="${LSML_K8S_BUILD_ONLY:-etcd kubernetes kwok helm crictl coredns local-path-provisioner}"
for c in $only; do
  case "$c" in
    etcd) have_all etcd || timed "build etcd $ETCD_VERSION" build_etcd ;;
    kubernetes) have_all "${kube_binaries[@]}" || timed "build ${kube_binaries[*]} $K8S_VERSION" build_kubernetes ;;
    kwok) have_all kwok || timed "build kwok $KWOK_VERSION" build_kwok ;;
    helm) have_all helm || timed "build helm $HELM_VERSION" build_helm ;;
    crictl) have_all crictl || timed "build crictl $CRI_TOOLS_VERSION" build_crictl ;;
    coredns) have_all coredns || timed "build coredns $COREDNS_VERSION" build_coredns ;;
    local-path-provisioner) have_all local-path-provisioner \
        || timed "build local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION" build_local_path_provisioner ;;
    *) die "unknown component $c" ;;
  esac
done
# kwok's own default stages (node-initialize, node-heartbeat-with-lease, pod fast
# ready/complete/delete), copied from the kwok module into one --config file.
step="kwok stages"
kwok_src="$GOMODCACHE/sigs.k8s.io/kwok@$KWOK_VERSION"
[[ -d "$kwok_src" ]] || go mod download "sigs.k8s.io/kwok@$KWOK_VERSION" >&2
mkdir -p "$(dirname "$stages")"
{
  first=1
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [[ -f "$kwok_src/kustomize/stage/$f" ]] || die "kwok stage $f not found in $kwok_src"
    [[ $first == 1 ]] || echo "---"; first=0
    cat "$kwok_src/kustomize/stage/$f"
  done
} > "$stages.tmp" && mv "$stages.tmp" "$stages"

step="verify"
for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || die "binary $bin/$b missing after build"; done
"$bin/kube-apiserver" --version >&2 || die "kube-apiserver does not run"
"$bin/etcd" --version >&2 || die "etcd does not run"
expected_manifest > "$manifest.tmp" && mv "$manifest.tmp" "$manifest"
log "build took $(( $(date +%s) - start ))s"
echo "$bin"
