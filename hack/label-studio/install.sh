#!/usr/bin/env bash
# Installs the real Label Studio from PyPI into a venv of its own under
# ~/.cache/lsml/ (it is far too heavy for lsml's .venv and must not leak into
# lsml's dependencies), every package pinned by constraints.txt. Reuses a
# complete install: the marker file, which records the constraints' hash, is
# written last (after Label Studio has started once, migrating the template), so
# an interrupted or broken install, or one made under other constraints, is redone
# rather than trusted.
# Prints the path of the `label-studio` executable as the LAST stdout line;
# all chatter goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=version.env
. "$here/version.env"

PYTHON="${PYTHON:-python3}"
cache_root="${LSML_CACHE_DIR:-$HOME/.cache/lsml}"
venv="$cache_root/label-studio-$LABEL_STUDIO_VERSION"
marker="$venv/.lsml-install-complete"
binary="$venv/bin/label-studio"

template="$venv/lsml-template/label_studio.sqlite3"
constraints="$here/constraints.txt"
wanted="constraints $(sha256sum "$constraints" | cut -d' ' -f1)"

# One install at a time: a second run would remove the venv under the first one's feet.
mkdir -p "$cache_root"
exec 9>"$cache_root/label-studio-$LABEL_STUDIO_VERSION.lock"
if command -v flock >/dev/null 2>&1; then
    flock -n 9 || { echo "another install.sh holds the lock; waiting" >&2; flock 9; }
fi

build_template() {
    # An empty migrated database the test fixture copies, so each session
    # skips Label Studio's 1-2 minutes of first-start migrations.
    [ -f "$template" ] && return 0
    echo "building a migrated template database (once per version)" >&2
    mkdir -p "$(dirname "$template")"
    "$venv/bin/python" "$here/migrate_template.py" "$template" >&2
}

if [ -f "$marker" ] && [ -x "$binary" ] && [ "$(cat "$marker")" = "$wanted" ]; then
    echo "label-studio $LABEL_STUDIO_VERSION already installed in $venv" >&2
    build_template
    echo "$binary"
    exit 0
fi

echo "installing label-studio $LABEL_STUDIO_VERSION into $venv (takes a few minutes)" >&2
rm -rf "$venv"
mkdir -p "$cache_root"
"$PYTHON" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --constraint "$constraints" "label-studio==$LABEL_STUDIO_VERSION" >&2
# A smoke check before declaring the install complete. Not `label-studio
# --version`: it asks PyPI for the latest version and can hang without network.
"$venv/bin/python" -c "import label_studio, django" >&2
[ -x "$binary" ]
build_template  # Label Studio's settings load here: a broken dependency fails the install, not every test
echo "$wanted" >"$marker"
echo "$binary"
