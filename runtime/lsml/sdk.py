"""label-studio-sdk interop: the SDK's objects when it is installed (`lsml[sdk]`), lsml's stand-ins when not.

Why optional: the SDK drags in pandas, opencv, nltk, lxml and more (about 320 MB installed), which a
model server that never touches them should not pay for. Models written for
label-studio-ml-backend call `self.label_interface` (the SDK's `LabelInterface`) far beyond the
stand-in in `lsml.label_config`, and return the SDK's `PredictionValue`; with the extra installed
they get exactly the SDK's objects, without it the stand-in answers what it can and anything
more fails with `SdkMissing`, which names the extra to install.

`LSML_LABEL_INTERFACE=standin` keeps the stand-in even with the SDK installed (a config the SDK
refuses falls back to the stand-in anyway, with a warning).
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import logging
import os
import sys
from typing import Any

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'lsml[sdk]'"


class SdkMissing(ImportError):
    """Code needs label-studio-sdk, which is not installed: the message names the extra that brings it."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} needs label-studio-sdk, which is not installed: {INSTALL_HINT}")


@functools.cache
def _sdk_module(name: str) -> Any:
    """`label_studio_sdk.<name>` imported once, or None when the SDK (or that module) is missing."""
    try:
        return importlib.import_module(f"label_studio_sdk.{name}")
    except ImportError:
        return None


def available() -> bool:
    """True when label-studio-sdk's LabelInterface can be imported."""
    return _sdk_module("label_interface") is not None


def sdk_label_interface_class() -> type | None:
    module = _sdk_module("label_interface")
    return getattr(module, "LabelInterface", None) if module is not None else None


def sdk_prediction_value_class() -> type | None:
    module = _sdk_module("label_interface.objects")
    return getattr(module, "PredictionValue", None) if module is not None else None


def prediction_value_class() -> type:
    """The SDK's `PredictionValue` when installed, else lsml's (same fields and `model_dump`)."""
    cls = sdk_prediction_value_class()
    if cls is not None:
        return cls
    from lsml.response import PredictionValue

    return PredictionValue


def make_label_interface(config: str | None, parsed: dict) -> Any:
    """`self.label_interface` for a model: the SDK's `LabelInterface(config)` when installed, else the stand-in.

    The SDK's object is built once per model instance (lsml builds one instance per process and
    project), so its XML parsing is paid once, not per request.
    """
    from lsml.label_config import LabelInterface as StandIn

    sdk_cls = sdk_label_interface_class()
    if sdk_cls is None or not config or os.environ.get("LSML_LABEL_INTERFACE", "").strip().lower() == "standin":
        return StandIn(config, parsed)
    try:
        return sdk_cls(config=config)
    except Exception as exc:  # noqa: BLE001 - a config the SDK refuses still serves through the stand-in
        logger.warning(
            "label-studio-sdk's LabelInterface refused the label config (%s: %s); using lsml's stand-in",
            type(exc).__name__,
            exc,
        )
        return StandIn(config, parsed)


class _MissingSdkHint(importlib.abc.MetaPathFinder):
    """Last on `sys.meta_path`: reached only when no other finder has `label_studio_sdk`, it says which extra brings it."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "label_studio_sdk":  # its submodules are only looked for once it was found
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: label-studio-sdk is not installed ({INSTALL_HINT})", name=fullname
            )
        return None


def hint_missing_sdk() -> None:
    """Make `import label_studio_sdk...` without the SDK fail with a message naming the extra.

    Reference backends import the SDK themselves (`from label_studio_sdk.label_interface.objects
    import PredictionValue`); `label_studio_ml` installs this when it is imported. The finder goes
    last, so an installed SDK is found as usual and nothing else is affected.
    """
    if not any(isinstance(finder, _MissingSdkHint) for finder in sys.meta_path):
        sys.meta_path.append(_MissingSdkHint())
