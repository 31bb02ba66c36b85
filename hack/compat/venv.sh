#!/usr/bin/env bash
# Creates (or updates) .venv-compat: lsml installed editable with its `compat` extra (label-studio-sdk and
# what the vendored label-studio-ml-backend examples' tests import), and NOT the reference SDK
# (label-studio-ml). tests/compat runs each example's own tests with this interpreter.
#
# Why a venv of its own, not .venv: the examples need boto3, whose botocore requires python-dateutil<3,
# while kubernetes 37 (lsml[dev], the operator's client) requires python-dateutil>=3.
# Idempotent: a stamp records pyproject.toml's hash; an unchanged one does nothing. Prints the venv's
# python as the last stdout line; chatter goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
venv="${LSML_COMPAT_VENV:-$PWD/.venv-compat}"
stamp="$venv/.lsml-compat-stamp"
constraints=hack/constraints/compat.txt  # the versions the suite passed with (hack/constraints/freeze says why)
want="$(cat pyproject.toml "$constraints" | sha256sum | cut -d' ' -f1)"

# One install at a time (the test fixture and hack/test may both call this).
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "$venv up to date" >&2
    echo "$venv/bin/python"
    exit 0
fi
echo "installing lsml[compat] into $venv (a few minutes the first time)" >&2
[[ -x "$venv/bin/python" ]] || "$PYTHON" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --constraint "$constraints" -e '.[compat]' >&2
if "$venv/bin/python" -c 'import importlib.metadata as m; m.distribution("label-studio-ml")' 2>/dev/null; then
    echo "label-studio-ml (the reference SDK) is installed in $venv: it would shadow lsml's label_studio_ml" >&2
    exit 1
fi
echo "$want" >"$stamp"
echo "$venv/bin/python"
