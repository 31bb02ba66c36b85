#!/usr/bin/env bash
# Creates (or updates) .venv with lsml installed editable with its dev extras, at the versions the suite passed with
# (hack/constraints/dev.txt; hack/constraints/freeze says why and how to remake it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check --constraint hack/constraints/dev.txt -e '.[dev]'
