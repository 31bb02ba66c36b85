#!/usr/bin/env bash
# Debian packages the tests run for real: redis-server (tests start their own on free ports),
# openssl (the local Kubernetes control plane generates its certificates with it); for the images
# (hack/images/build, tests/images): docker.io (dockerd + CLI), containerd (ctr), debootstrap, docker-compose.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -x /usr/sbin/dockerd ] || missing+=(docker.io)
command -v ctr >/dev/null 2>&1 || missing+=(containerd)
[ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing ${missing[*]} from Debian" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
# Debian's package may start a system redis on 6379; tests never use it, and it is left alone.
