"""lsml: Label Studio ML backends, from a laptop to Kubernetes.

Public surface for model authors::

    from lsml import LabelStudioMLBase, ModelResponse, PredictionValue
"""

from lsml.model import LabelStudioMLBase, project_key
from lsml.response import ModelResponse, PredictionValue

__all__ = ["LabelStudioMLBase", "ModelResponse", "PredictionValue", "project_key", "__version__"]

__version__ = "0.1.0"
