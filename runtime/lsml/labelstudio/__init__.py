"""Label Studio REST client for lsml: no label-studio-sdk (it drags in opencv, pandas, nltk)."""

from lsml.labelstudio.auth import LEGACY, PERSONAL_ACCESS_TOKEN, token_kind
from lsml.labelstudio.client import LabelStudioClient
from lsml.labelstudio.errors import LabelStudioError, LabelStudioUnexpectedResponse, LabelStudioUnreachable

__all__ = [
    "LEGACY",
    "PERSONAL_ACCESS_TOKEN",
    "LabelStudioClient",
    "LabelStudioError",
    "LabelStudioUnexpectedResponse",
    "LabelStudioUnreachable",
    "token_kind",
]
