#!/usr/bin/env bash
# Runs the serving tests on the oldest and the newest gunicorn that pyproject.toml's bounds allow
# (issue 23): lsml's worker (runtime/lsml/server/gunicorn_worker.py) builds on gunicorn's public worker
# API, and this is what says it still does on both ends of the range.
#
# Each gunicorn is a small install dir of its own (`pip install --target`, gunicorn alone: its one
# dependency, packaging, is in .venv), cached under ~/.cache/lsml/gunicorn/VERSION and put first on
# PYTHONPATH for .venv's python: the tests, the `label-studio-ml start` they spawn and its gunicorn
# master and workers all import that gunicorn. Not a full venv per version: that would reinstall numpy,
# scikit-learn and the rest for one 200 KB package. Needs .venv (hack/venv.sh). Extra arguments go to
# pytest. About 2.5 minutes warm (two runs of the serving tests); a first run downloads two wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
cache="${LSML_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lsml}/gunicorn"
mkdir -p "$cache"

# The requirement as pyproject.toml states it, e.g. "gunicorn>=23.0.0,<28".
spec="$("$PY" - <<'PY'
import tomllib
from packaging.requirements import Requirement
with open("pyproject.toml", "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
print(next(str(r) for r in map(Requirement, deps) if r.name == "gunicorn"))
PY
)"
oldest="$("$PY" - "$spec" <<'PY'
import sys
from packaging.requirements import Requirement
lower = [s.version for s in Requirement(sys.argv[1]).specifier if s.operator in (">=", "==")]
if not lower:
    sys.exit(f"{sys.argv[1]}: no lower bound (>=) to test")
print(lower[0])
PY
)"
# The newest release the bounds allow, as pip resolves it (one index query).
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: -d "$probe" "$spec" >&2
newest="$(basename "$probe"/gunicorn-*.whl | cut -d- -f2)"
echo "gunicorn matrix for $spec: oldest $oldest, newest $newest" >&2

install() {  # prints the install dir of gunicorn==$1, making it once (flock: parallel runs share it)
    local dir="$cache/$1"
    exec 8>"$dir.lock"
    flock 8
    if [[ ! -f "$dir/.complete" ]]; then
        rm -rf "$dir"
        "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --only-binary :all: \
            --target "$dir" "gunicorn==$1" >&2
        touch "$dir/.complete"
    fi
    exec 8>&-
    echo "$dir"
}

rc=0
for version in $(printf '%s\n' "$oldest" "$newest" | uniq); do
    dir="$(install "$version")"
    got="$(PYTHONPATH="$dir" "$PY" -c 'import gunicorn; print(gunicorn.__version__)')"
    if [[ "$got" != "$version" ]]; then
        echo "hack/gunicorn-matrix.sh: $dir gives gunicorn $got, not $version" >&2
        exit 1
    fi
    echo "== serving tests on gunicorn $version" >&2
    start=$SECONDS
    PYTHONPATH="$dir" "$PY" -m pytest -p no:cacheprovider -q \
        tests/runtime/test_serving_worker.py tests/runtime/test_serving_slow_clients.py \
        tests/runtime/test_serving_balance.py tests/runtime/test_serving_stop.py \
        tests/runtime/test_serving_config.py "$@" || rc=$?
    echo "== gunicorn $version: exit $rc, $((SECONDS - start)) s" >&2
    [[ $rc == 0 ]] || break
done
exit "$rc"
