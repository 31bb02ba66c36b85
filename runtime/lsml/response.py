"""What `predict` may return: plain dicts, or a `ModelResponse` of `PredictionValue`s.

Plain dataclasses (no pydantic), with the names and methods of
label-studio-ml-backend's response objects: `ModelResponse(predictions=...,
model_version=...)`, `has_model_version()`, `update_predictions_version()`,
`set_version()`, `model_dump()`; `PredictionValue(result=[...], score=...,
model_version=...)`. label-studio-sdk's `PredictionValue` (pydantic) and any
response object with `predictions` and `model_version` (label-studio-ml-backend's
own `ModelResponse`) are accepted wherever these are.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


def _plain(item: Any) -> Any:
    """A result region as a dict (accepts dicts and objects with model_dump/to_dict/dict)."""
    if isinstance(item, dict):
        return item
    for attr in ("model_dump", "to_dict", "dict"):
        fn = getattr(item, attr, None)
        if callable(fn):
            return fn()
    return item


@dataclass
class PredictionValue:
    """One prediction for one task: a list of result regions with a score."""

    result: list = field(default_factory=list)
    score: float | None = None
    model_version: str | None = None

    def model_dump(self, exclude_none: bool = False) -> dict:
        out = {"result": [_plain(r) for r in self.result], "score": self.score, "model_version": self.model_version}
        if exclude_none:
            out = {k: v for k, v in out.items() if v is not None}
        return out

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    # label-studio-sdk's pydantic objects answer to both names (after every `dict` annotation: it shadows the builtin)
    dict = model_dump


@dataclass
class ModelResponse:
    """Predictions for a batch of tasks: one entry per task, in task order."""

    predictions: list = field(default_factory=list)
    model_version: str | None = None

    def has_model_version(self) -> bool:
        return bool(self.model_version)

    def update_predictions_version(self) -> None:
        """Give every prediction without a model_version the response's (dicts, lsml's or the SDK's values)."""
        for entry in self.predictions:
            for p in entry if isinstance(entry, list) else (entry,):
                if isinstance(p, dict):
                    if not p.get("model_version"):
                        p["model_version"] = self.model_version
                elif hasattr(p, "model_version") and not p.model_version:
                    p.model_version = self.model_version

    def set_version(self, version: str) -> None:
        self.model_version = version
        self.update_predictions_version()

    def model_dump(self) -> dict:
        """The response as plain data, as label-studio-ml-backend's (pydantic) dumps it: a prediction
        without a model_version keeps None here (`set_version` fills them; the server fills them when it
        answers)."""
        return {"model_version": self.model_version, "predictions": [_dumped(p) for p in self.predictions]}


def _dumped(entry: Any) -> Any:
    if isinstance(entry, (list, tuple)):
        return [_dumped(e) for e in entry]
    return _plain(entry)


def _finite_score(prediction: dict) -> dict:
    """A NaN or infinite score becomes None: JSON has no NaN, and one bad score must not cost the batch."""
    score = prediction.get("score")
    try:
        finite = score is None or math.isfinite(float(score))  # numpy scalars too
    except (TypeError, ValueError):
        return prediction
    if not finite:
        logger.warning("a prediction's score was %s; sent as null", score)
        prediction["score"] = None
    return prediction


def serialize_prediction(entry: Any, model_version: str | None) -> Any:
    """One task's prediction(s) as JSON-ready data, filling a missing model_version.

    Dicts are filled in place (the model built them for this response).
    """
    if isinstance(entry, dict):
        if not entry.get("model_version") and model_version is not None:
            entry["model_version"] = model_version
        return _finite_score(entry)
    if isinstance(entry, PredictionValue):
        out = entry.model_dump()
        if not out["model_version"]:
            out["model_version"] = model_version
        return _finite_score(out)
    if isinstance(entry, (list, tuple)):
        return [serialize_prediction(e, model_version) for e in entry]
    dumped = _plain(entry)
    if isinstance(dumped, dict):
        return serialize_prediction(dumped, model_version)
    raise TypeError(f"a prediction must be a dict or PredictionValue, got {type(entry).__name__}")


def serialize_predictions(output: Any, model_version: str) -> list:
    """`predict`'s return value (list or ModelResponse) -> the `results` list Label Studio expects."""
    if output is None:
        raise TypeError("predict returned None; return one prediction per task")
    if isinstance(output, ModelResponse) or _is_response_like(output):
        version = output.model_version or model_version
        return [serialize_prediction(p, version) for p in output.predictions]
    if isinstance(output, dict):
        raise TypeError("predict returned a dict; return a list (one prediction per task) or a ModelResponse")
    return [serialize_prediction(p, model_version) for p in output]


def _is_response_like(output: Any) -> bool:
    """A response object of another library (label-studio-ml-backend's pydantic `ModelResponse`)."""
    return (
        not isinstance(output, (dict, list, tuple))
        and isinstance(getattr(output, "predictions", None), list)
        and hasattr(output, "model_version")
    )


def _is_empty(prediction: Any) -> bool:
    return isinstance(prediction, dict) and not prediction.get("result")


def without_empty_predictions(results: list) -> list:
    """Each task's predictions minus those with an empty `result`; a task left with none gets `[]`.

    Why: an untrained model's placeholder (`{"result": [], "score": 0.0}`) is
    stored by Label Studio as a real prediction of that version: it counts in
    the Data Manager, sorts first by uncertainty, and Label Studio never asks
    again for that version. An empty list for a task is one item per task (no
    one-by-one fallback) and makes Label Studio 1.23.2 store nothing, so it
    asks again once a trained version is served.
    """
    out = []
    for entry in results:
        if isinstance(entry, list):
            out.append([p for p in entry if not _is_empty(p)])
        else:
            out.append([] if _is_empty(entry) else entry)
    return out


def task_predictions(results: list, untrained: bool) -> list:
    """The `results` lsml sends (to `/predict` callers and the pre-labelling job): an untrained model's
    empty predictions are dropped (`without_empty_predictions`); a trained model's are kept, because
    "nothing to label here" (a detector finding no object) is a real answer of that version."""
    return without_empty_predictions(results) if untrained else results
