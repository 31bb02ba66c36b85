"""`label_studio_ml.utils`: the reference's helpers, from lsml's modules."""

from __future__ import annotations

from lsml.helpers import (
    InMemoryLRUDictCache,
    compare_nested_structures,
    get_choice,
    get_image_size,
    is_skipped,
    is_valid_url,
    match_labels,
)
from lsml.label_config import DATA_UNDEFINED_NAME, get_first_tag_keys, get_single_tag_keys, parse_config
from lsml.model import needs_preload as is_preload_needed

__all__ = [
    "DATA_UNDEFINED_NAME",
    "InMemoryLRUDictCache",
    "compare_nested_structures",
    "get_choice",
    "get_first_tag_keys",
    "get_image_size",
    "get_single_tag_keys",
    "is_preload_needed",
    "is_skipped",
    "is_valid_url",
    "match_labels",
    "parse_config",
]
