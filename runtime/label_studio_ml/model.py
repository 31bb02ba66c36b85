"""`label_studio_ml.model`: the reference's model module; the base class is lsml's own.

`LabelStudioMLBase` here *is* `lsml.LabelStudioMLBase` (not a copy or a subclass), so a
reference backend's model gets lsml's engine: one instance per process and project, store
versions, training on RQ, and `self.label_interface` from label-studio-sdk with `lsml[sdk]`.
"""

from __future__ import annotations

from label_studio_ml.response import ModelResponse
from lsml.model import LabelStudioMLBase

__all__ = ["LabelStudioMLBase", "ModelResponse"]
