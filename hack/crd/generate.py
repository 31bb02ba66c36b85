#!/usr/bin/env python3
"""Write the MLBackend CRD (crds/mlbackend.yaml and the chart's copy) from the typed model.

The model (operator/lsml_operator/crd/model.py) is the one source of the schema: field names,
types, defaults, descriptions, CEL rules. Run this after changing it and commit both files.
`--check` (hack/lint) writes nothing and exits 1 when a committed copy is not what it would write.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from lsml_operator.crd.document import render

REPO = Path(__file__).resolve().parents[2]
TARGETS = [REPO / "crds" / "mlbackend.yaml", REPO / "charts" / "lsml-operator" / "crds" / "mlbackend.yaml"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail (exit 1) when a committed CRD is out of date")
    args = parser.parse_args(argv)
    text = render()
    stale = [p for p in TARGETS if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            old = path.read_text().splitlines(keepends=True) if path.exists() else []
            rel = path.relative_to(REPO)
            sys.stderr.writelines(difflib.unified_diff(old, text.splitlines(keepends=True), f"{rel}", "generated"))
            print(f"{rel} is not what hack/crd/generate.py writes from the model: run it and commit", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
