"""`label_studio_ml.response.ModelResponse`: lsml's `ModelResponse`, built the way the reference's is.

The reference's is a pydantic model: it turns prediction dicts into label-studio-sdk
`PredictionValue` objects (attribute access: `response.predictions[0].result`) and ignores
unknown keyword arguments (`ModelResponse(predictions=..., model_versions=...)`, a typo one of
its examples ships). This subclass does both (the SDK's `PredictionValue` with `lsml[sdk]`,
lsml's otherwise) and is a `lsml.ModelResponse`, so lsml's server serializes it as its own.
"""

from __future__ import annotations

from typing import Any

from lsml import response as _lsml_response
from lsml import sdk

PredictionValue = _lsml_response.PredictionValue


class ModelResponse(_lsml_response.ModelResponse):
    """Predictions for a batch of tasks: one entry (a prediction or a list of them) per task."""

    def __init__(self, predictions: list | None = None, model_version: Any = None, **_ignored: Any) -> None:
        super().__init__(predictions=[_as_value(p) for p in predictions or []], model_version=model_version)


def _as_value(entry: Any) -> Any:
    """A task's prediction(s) as PredictionValue objects, as pydantic validation gives them in the reference."""
    if isinstance(entry, (list, tuple)):
        return [_as_value(e) for e in entry]
    if not isinstance(entry, dict):
        return entry
    cls = sdk.prediction_value_class()
    validate = getattr(cls, "model_validate", None)
    if validate is not None:  # the SDK's pydantic model: its own validation, extra keys dropped
        return validate(entry)
    return cls(**{k: entry[k] for k in ("result", "score", "model_version") if k in entry})


__all__ = ["ModelResponse", "PredictionValue"]
