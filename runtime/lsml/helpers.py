"""Small helpers model code calls: what label-studio-ml-backend's `label_studio_ml.utils` offers.

They live here, in lsml, so that `label_studio_ml.utils` (the import path reference backends use)
only re-exports them, and a model written for lsml can use them without the facade.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any
from urllib.parse import urlparse


def get_image_size(filepath: str) -> tuple[int, int]:
    """(width, height) of an image as displayed: EXIF orientation applied (a portrait photo stored sideways).

    Needs Pillow (lsml's `examples` extra): Label Studio's image coordinates are percentages of
    the displayed size, so a model converting pixels to them needs exactly this.
    """
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImportError("get_image_size needs Pillow: pip install pillow (or 'lsml[examples]')") from None
    with Image.open(filepath) as img:
        transposed = ImageOps.exif_transpose(img)
        return (transposed or img).size


def is_skipped(task: dict) -> bool:
    """True when the task's only annotation was skipped or cancelled."""
    annotations = task.get("annotations") or []
    if len(annotations) != 1:
        return False
    return bool(annotations[0].get("skipped") or annotations[0].get("was_cancelled"))


def get_choice(task: dict) -> str:
    """The first choice of the first region of the task's first annotation (KeyError/IndexError when absent)."""
    return task["annotations"][0]["result"][0]["value"]["choices"][0]


def match_labels(text: str, labels: list[str]) -> list[str]:
    """For each line of `text` (an LLM's answer), the label it resembles most (difflib's ratio; first on ties)."""
    return [
        max(labels, key=lambda label: difflib.SequenceMatcher(None, line, label).ratio()) for line in text.splitlines()
    ]


def is_valid_url(path: str) -> bool:
    """True for an absolute URL (a scheme and a host)."""
    try:
        parsed = urlparse(path)
    except ValueError:
        return False
    return bool(parsed.scheme and parsed.netloc)


class InMemoryLRUDictCache:
    """A bounded dict that forgets its least recently used key (`get`, `put`, `in`)."""

    def __init__(self, capacity: int = 1) -> None:
        self.capacity = capacity
        self.cache: OrderedDict[Hashable, Any] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self.cache

    def get(self, key: Hashable) -> Any:
        if key not in self.cache:
            return None
        self.cache.move_to_end(key)
        return self.cache[key]

    def put(self, key: Hashable, value: Any) -> None:
        if key in self.cache:
            self.cache.move_to_end(key)
        self.cache[key] = value
        while len(self.cache) > self.capacity:
            self.cache.popitem(last=False)

    def __str__(self) -> str:
        return str(self.cache)


def compare_nested_structures(a: Any, b: Any, path: str = "", rel: float = 1e-4, abs: float | None = None) -> None:
    """Assert that two JSON-like structures are equal, floats within `rel`/`abs` (pytest.approx).

    For tests comparing predictions: scores differ in their last digits between machines.
    """
    from pytest import approx  # a test helper: pytest is imported only when it is used

    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"Keys mismatch at {path}"
        for key in a:
            compare_nested_structures(a[key], b[key], f"{path}.{key}", rel, abs)
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"List size mismatch at {path}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            compare_nested_structures(x, y, f"{path}[{i}]", rel, abs)
    elif isinstance(a, float) and isinstance(b, float):
        assert a == approx(b, rel=rel, abs=abs), f"Mismatch at {path}"
    else:
        assert a == b, f"Mismatch at {path}"
