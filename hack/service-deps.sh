# Sourced, not run: what the service-layer tests need beyond .venv, installed or reused from ~/.cache/lsml, with
# the variables that tell the tests where each piece is exported. hack/test and bench/loaded_passes.sh source it,
# so one list decides what a test run has. Needs hack/install-system-deps.sh and hack/venv.sh to have run.
# Assignments are plain (not `export VAR=$(...)`) so that the caller's set -e/pipefail stop on a failed install.

# Real Label Studio in its own venv, the control plane's Go binaries (etcd, kube-*, kwok, helm) and the images
# (a private dockerd when none answers, left running for the next run; hack/images/docker-down stops it; a
# debootstrap base, cached by content: warm, about a second).
lsml_service_deps() {
  LSML_LABEL_STUDIO_BIN="$(hack/label-studio/install.sh | tail -n 1)"
  LSML_K8S_BIN_DIR="$(hack/control-plane/build.sh | tail -n 1)"
  export LSML_LABEL_STUDIO_BIN LSML_K8S_BIN_DIR
  hack/images/build >&2
}

# tests/compat's interpreters: .venv-compat (lsml[compat]) and .venv-compat-torch, that and PyTorch for
# timeseries_segmenter over a venv cached under ~/.cache/lsml/compat-torch (~3 GB of CUDA wheels from PyPI:
# minutes the first time on a machine, about a second warm).
lsml_compat_deps() {
  LSML_COMPAT_PYTHON="$(hack/compat/venv.sh | tail -n 1)"
  LSML_COMPAT_TORCH_PYTHON="$(hack/compat/torch-venv.sh | tail -n 1)"
  export LSML_COMPAT_PYTHON LSML_COMPAT_TORCH_PYTHON
}
