"""Label Studio REST client for lsml: no label-studio-sdk (it drags in opencv, pandas, nltk)."""

from lsml.labelstudio.addresses import AddressPolicy, MediaAddressRefused
from lsml.labelstudio.auth import LEGACY, PERSONAL_ACCESS_TOKEN, clean_token, token_kind
from lsml.labelstudio.client import LabelStudioClient
from lsml.labelstudio.connect import connect
from lsml.labelstudio.errors import LabelStudioError, LabelStudioUnexpectedResponse, LabelStudioUnreachable
from lsml.labelstudio.origin import Credential, origin, same_origin
from lsml.labelstudio.transport import RedirectRefused

__all__ = [
    "AddressPolicy",
    "Credential",
    "clean_token",
    "MediaAddressRefused",
    "RedirectRefused",
    "connect",
    "origin",
    "same_origin",
    "LEGACY",
    "PERSONAL_ACCESS_TOKEN",
    "LabelStudioClient",
    "LabelStudioError",
    "LabelStudioUnexpectedResponse",
    "LabelStudioUnreachable",
    "token_kind",
]
