"""The committed CRD (both copies) is what hack/crd/generate.py writes from the typed spec (lsml_operator.crd).

The typed model is the one source of the schema; this test fails when someone edits the YAML by hand or
changes the model without regenerating (`hack/crd/generate.py`; hack/lint runs it with --check).
"""

from __future__ import annotations

import yaml

from lsml_operator.crd.document import crd_document, render

from .helpers import CHART, CRD_PATH


def test_generated_crd_equals_committed_crd():
    committed = yaml.safe_load(CRD_PATH.read_text())
    generated = crd_document()
    assert generated == committed


def test_committed_files_are_the_rendered_text():
    assert CRD_PATH.read_text() == render()
    assert (CHART / "crds" / "mlbackend.yaml").read_text() == render()
