#!/usr/bin/env bash
# Create (once) the venv that runs the legacy `label-studio-ml` 1.0.9 package
# from PyPI, the baseline bench/predict.py compares lsml against.
#
# Why a separate venv: 1.0.9 pins Flask 1.1.2, Werkzeug 2.0.2, Jinja2 3.0.3,
# which cannot live next to lsml's Flask 3 in /work/main/.venv.
# Why the same numpy/scipy/scikit-learn as lsml's venv: both backends unpickle
# the very same fitted pipeline, and a pickle is only safe across identical
# scikit-learn versions.
# gunicorn 20.1.0 and rq 1.10.1 are what 1.0.9's generated requirements.txt
# pins (its Dockerfile runs `gunicorn --preload --workers 1 --threads 8`).
#
# Idempotent: a stamp file records the pins; rerunning with the same pins does
# nothing. Prints the venv's python path on the last line.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
MAIN_PY="${MAIN_PY:-$REPO/.venv/bin/python}"
BASE_PY="${BASE_PY:-$("$MAIN_PY" -c 'import sys; print(sys._base_executable)')}"
VENV="${LEGACY_VENV:-$HOME/.cache/lsml/legacy-label-studio-ml-1.0.9}"

# Pin the model stack to exactly what lsml's venv has.
pins="$("$MAIN_PY" - <<'EOF'
from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in ("numpy", "scipy", "scikit-learn", "joblib", "threadpoolctl")))
EOF
)"
want="label-studio-ml==1.0.9 gunicorn==20.1.0 rq==1.10.1 ${pins}"

if [[ -x "$VENV/bin/python" && -f "$VENV/.lsml-stamp" && "$(cat "$VENV/.lsml-stamp")" == "$want" ]]; then
    echo "legacy venv up to date: $VENV" >&2
    echo "$VENV/bin/python"
    exit 0
fi

mkdir -p "$(dirname "$VENV")"
[[ -x "$VENV/bin/python" ]] || "$BASE_PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check $want
# Fail now, not in the middle of a benchmark, if the old stack cannot import.
"$VENV/bin/python" -c 'import label_studio_ml.api, sklearn, gunicorn; print("legacy stack imports ok")' >&2
echo "$want" > "$VENV/.lsml-stamp"
echo "$VENV/bin/python"
