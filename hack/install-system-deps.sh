#!/usr/bin/env bash
# Debian packages the tests run for real, installed only when missing:
# - redis-server (tests start their own on free ports),
# - openssl (the local Kubernetes control plane generates its certificates with it),
# - the images (hack/images/build, tests/images): docker.io (dockerd + CLI), containerd (ctr),
#   debootstrap, docker-compose,
# - the real node's runtime and network: containerd, runc, the CNI plugins, iptables, iproute2,
#   util-linux's unshare/mount (hack/control-plane/realnode.py),
# - prometheus (tests/e2e/test_dashboard_prometheus.py evaluates the Grafana dashboard's queries on it),
# - tesseract-ocr with the English, Simplified Chinese and German data: the vendored label-studio-ml-backend
#   `tesseract` example runs `--psm 6 -l chi_sim+eng+deu` (tests/compat),
# - stress-ng (the flake hunt loads the cores beside pytest: bench/README.md, "Flake hunt").
set -euo pipefail
missing=()
need() { # need COMMAND-OR-PATH PACKAGE
  if [[ "$1" == /* ]]; then [[ -e "$1" ]] || missing+=("$2"); else command -v "$1" >/dev/null 2>&1 || missing+=("$2"); fi
}
need redis-server redis-server
need openssl openssl
need /usr/sbin/dockerd docker.io
need ctr containerd
need containerd containerd
need /usr/sbin/debootstrap debootstrap
need docker-compose docker-compose
need runc runc
need /usr/lib/cni/bridge containernetworking-plugins
need iptables iptables
need ip iproute2
need unshare util-linux
need prometheus prometheus
need tesseract tesseract-ocr
need /usr/share/tesseract-ocr/5/tessdata/eng.traineddata tesseract-ocr-eng
need /usr/share/tesseract-ocr/5/tessdata/chi_sim.traineddata tesseract-ocr-chi-sim
need /usr/share/tesseract-ocr/5/tessdata/deu.traineddata tesseract-ocr-deu
need stress-ng stress-ng
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing ${missing[*]} from Debian" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
# Debian's package may start a system redis on 6379; tests never use it, and it is left alone.
