#!/usr/bin/env bash
# The interpreter tests/compat runs the reference `timeseries_segmenter` example with: lsml[compat] plus that
# example's own requirements, PyTorch among them (it trains an LSTM from scratch on the CPU; no weights).
#
# Why not .venv-compat: PyPI's Linux torch wheel brings ~3 GB of CUDA libraries (the CPU-only index is not
# one this project's machines reach), far too much to install into every checkout. So, in two layers:
#
# 1. A venv under ~/.cache/lsml/compat-torch/, built once per key: the Python version, the torch pin below,
#    lsml's dependency and `compat` requirements as pyproject.toml states them, and the example's
#    requirements.txt and requirements-test.txt. It holds every dependency and NOT lsml itself (a venv
#    shared by checkouts cannot hold one checkout's editable lsml). Nor the reference SDK: the example's
#    requirements-base.txt (label-studio-ml from git, gunicorn) is not installed.
# 2. .venv-compat-torch in this checkout: a venv without pip of its own whose site-packages adds layer 1
#    (a .pth), with this checkout's lsml installed editable into it (a few seconds, once).
#
# Warm (both stamps match), it costs a fraction of a second. Prints the python of layer 2 as the last stdout
# line; chatter goes to stderr. Fails (non-zero) when anything is missing: hack/test calls it, and a missing
# torch venv must fail the run, never skip the example.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${LSML_COMPAT_TORCH_VERSION:-2.15.0}"
example=tests/vendor/label_studio_ml_backend/examples/timeseries_segmenter
root="${LSML_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lsml}/compat-torch"
thin="${LSML_COMPAT_TORCH_VENV:-$PWD/.venv-compat-torch}"
mkdir -p "$root"

# What layer 1 installs, in two steps as the example's Dockerfile does: first what lsml[compat] needs (where
# the Dockerfile installs the reference SDK), then the example's requirements over it. Two pip runs, not one:
# the example pins pillow~=10.3 while label-studio-sdk 2.x asks for pillow>=12.3, which one resolution
# refuses; the Dockerfile's second run downgrades pillow (pip warns), and so does this one.
# From them, the key. Needs tomllib (Python 3.11+).
lsml_requirements="$(mktemp)"
example_requirements="$(mktemp)"
trap 'rm -f "$lsml_requirements" "$example_requirements"' EXIT
"$PYTHON" - >"$lsml_requirements" <<'PY'
import pathlib, tomllib
project = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
print("\n".join([*project["dependencies"], *project["optional-dependencies"]["compat"]]))
PY
{ awk 1 "$example/requirements.txt" "$example/requirements-test.txt"; echo "torch==$TORCH_VERSION"; } \
    | grep -v '^[[:space:]]*\(#\|$\)' >"$example_requirements"
py_version="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
# Each run pinned to the versions the suite passed with (hack/constraints/freeze says why): the first to
# lsml[compat]'s (.venv-compat's), the second to this layer's own, whose pillow is the example's.
first_constraints=hack/constraints/compat.txt
second_constraints=hack/constraints/compat-torch.txt
key="$({ echo "layout 1"; echo "python $py_version"; cat "$lsml_requirements"; echo "--"; cat "$example_requirements"; \
    echo "--"; cat "$first_constraints" "$second_constraints"; } | sha256sum | cut -c1-16)"
name="torch-$TORCH_VERSION-py$py_version-$key"
cache="$root/$name"

# Layer 1, once per key (flock: the test fixture and hack/test, or two checkouts, may ask at once).
exec 9>"$cache.lock"
flock 9
if [[ ! -f "$cache/.lsml-complete" ]]; then
    echo "building $cache: lsml[compat]'s dependencies, $example's requirements, torch $TORCH_VERSION (PyPI's" \
        "wheel with its CUDA libraries, ~3 GB: many minutes the first time)" >&2
    rm -rf "$cache"
    "$PYTHON" -m venv "$cache" >&2
    "$cache/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    # setuptools and wheel: layer 2 installs lsml editable with --no-build-isolation, from these
    "$cache/bin/python" -m pip install --quiet --disable-pip-version-check --constraint "$first_constraints" \
        "setuptools>=68" wheel -r "$lsml_requirements" >&2
    "$cache/bin/python" -m pip install --quiet --disable-pip-version-check --constraint "$second_constraints" \
        -r "$example_requirements" >&2
    if "$cache/bin/python" -c 'import importlib.metadata as m; m.distribution("label-studio-ml")' 2>/dev/null; then
        echo "label-studio-ml (the reference SDK) got installed into $cache: it would shadow lsml's label_studio_ml" >&2
        exit 1
    fi
    "$cache/bin/python" -c 'import torch, torchmetrics, pandas, sklearn, label_studio_sdk' >&2
    cat "$lsml_requirements" "$example_requirements" >"$cache/.lsml-requirements.txt"
    touch "$cache/.lsml-complete"
fi
touch "$cache/.lsml-used"
exec 9>&-

# Other keys' venvs that no run of this script has used for two weeks go (each is several GB); one being built
# holds its lock and is skipped.
while IFS= read -r used; do
    old="$(dirname "$used")"
    (
        exec 8>"$old.lock"
        flock -n 8 || exit 0
        echo "removing $old (unused for 14 days)" >&2
        rm -rf "$old" "$old.lock"
    )
done < <(find "$root" -mindepth 2 -maxdepth 2 -name .lsml-used -mtime +14 ! -path "$cache/*")

# Layer 2, once per checkout and key (and again when pyproject.toml changes: lsml's own metadata).
want="$name $(sha256sum pyproject.toml | cut -d' ' -f1)"
stamp="$thin/.lsml-compat-torch-stamp"
exec 9>"$thin.lock"
flock 9
if [[ -x "$thin/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "$thin up to date (on $cache)" >&2
    echo "$thin/bin/python"
    exit 0
fi
echo "making $thin: this checkout's lsml, editable, over $cache" >&2
rm -rf "$thin"
"$PYTHON" -m venv --without-pip "$thin" >&2
site="$("$thin/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
base="$("$cache/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# addsitedir, not a bare path line: the .pth files of layer 1's site-packages are processed too
echo "import site; site.addsitedir('$base')" >"$site/lsml-compat-torch.pth"
# layer 1's pip, run by layer 2's python, installs into layer 2 (sys.prefix)
"$thin/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . >&2
got="$("$thin/bin/python" -c 'import label_studio_ml, torch; print(label_studio_ml.__file__)')"
if [[ "$got" != "$PWD/runtime/label_studio_ml/__init__.py" ]]; then
    echo "$thin imports label_studio_ml from $got, not from this checkout's runtime/" >&2
    exit 1
fi
echo "$want" >"$stamp"
echo "$thin/bin/python"
