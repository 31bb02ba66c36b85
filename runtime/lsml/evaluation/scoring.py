"""Score a model version on held-out tasks: predictions vs annotations, by control type of the label config.

Built in: `Choices` -> `accuracy`, `macro_f1`; `Labels` on text -> `span_f1`;
`RectangleLabels` -> `mean_iou`, `map50`. With one scored control the keys are
the metric names; with several, `"<control>.<metric>"`. A model computes
anything else by overriding `LabelStudioMLBase.evaluate(tasks)`.
"""

from __future__ import annotations

from typing import Any

from lsml.evaluation import metrics
from lsml.label_config import parse_config


def _newest_annotation(task: dict) -> dict | None:
    annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    annotations.sort(key=lambda a: (a.get("updated_at") or a.get("created_at") or "", a.get("id") or 0))
    return annotations[-1] if annotations else None


def _regions(result: Any, from_name: str) -> list[dict]:
    return [r for r in result or [] if isinstance(r, dict) and r.get("from_name") == from_name]


def _choice(result: Any, from_name: str) -> str:
    for region in _regions(result, from_name):
        choices = (region.get("value") or {}).get("choices") or []
        if choices:
            return str(choices[0])
    return metrics.MISSING


def _spans(result: Any, from_name: str, kind: str) -> set[metrics.Span]:
    spans = set()
    for region in _regions(result, from_name):
        value = region.get("value") or {}
        for label in value.get(kind) or []:
            if value.get("start") is not None and value.get("end") is not None:
                spans.add((int(value["start"]), int(value["end"]), str(label)))
    return spans


def _boxes(result: Any, from_name: str, score: float) -> list[tuple[metrics.Box, str, float]]:
    boxes = []
    for region in _regions(result, from_name):
        value = region.get("value") or {}
        try:
            box = (float(value["x"]), float(value["y"]), float(value["width"]), float(value["height"]))
        except (KeyError, TypeError, ValueError):
            continue
        region_score = region.get("score")
        s = float(region_score) if isinstance(region_score, int | float) else score
        for label in value.get("rectanglelabels") or []:
            boxes.append((box, str(label), s))
    return boxes


def prediction_result(prediction: Any) -> tuple[list, float]:
    """`(result, score)` of one prediction as `predict` returns it (a dict, or a PredictionValue-like object)."""
    if prediction is None:
        return [], 0.0
    if not isinstance(prediction, dict) and hasattr(prediction, "model_dump"):
        prediction = prediction.model_dump()
    elif not isinstance(prediction, dict) and hasattr(prediction, "__dict__"):
        prediction = dict(vars(prediction))
    if not isinstance(prediction, dict):
        return [], 0.0
    score = prediction.get("score")
    return list(prediction.get("result") or []), float(score) if isinstance(score, int | float) else 0.0


def score_predictions(label_config: str | None, tasks: list[dict], predictions: list[Any]) -> dict[str, float]:
    """Built-in metrics of `predictions` (one per task, in order) against the tasks' newest annotations."""
    controls = parse_config(label_config)
    pairs = []
    for task, prediction in zip(tasks, predictions, strict=False):
        annotation = _newest_annotation(task)
        if annotation is not None:
            pairs.append((annotation.get("result") or [], prediction_result(prediction)))
    if not pairs:
        return {}
    scored: dict[str, dict[str, float]] = {}
    for name, info in controls.items():
        kind = info.get("type")
        if kind == "Choices":
            y_true = [_choice(truth, name) for truth, _ in pairs]
            y_pred = [_choice(pred, name) for _, (pred, _s) in pairs]
            keep = [i for i, t in enumerate(y_true) if t != metrics.MISSING]
            if keep:
                t = [y_true[i] for i in keep]
                p = [y_pred[i] for i in keep]
                scored[name] = {"accuracy": metrics.accuracy(t, p), "macro_f1": metrics.macro_f1(t, p)}
        elif kind in ("Labels", "HyperTextLabels") and any(
            i.get("type") in ("Text", "HyperText") for i in info.get("inputs", [])
        ):
            key = "labels" if kind == "Labels" else "hypertextlabels"
            truth = [_spans(t, name, key) for t, _ in pairs]
            pred = [_spans(p, name, key) for _, (p, _s) in pairs]
            scored[name] = {"span_f1": metrics.span_f1(truth, pred)}
        elif kind == "RectangleLabels":
            tboxes = [[(b, lab) for b, lab, _ in _boxes(t, name, 1.0)] for t, _ in pairs]
            pboxes = [_boxes(p, name, s) for _, (p, s) in pairs]
            scored[name] = {"mean_iou": metrics.mean_iou(tboxes, pboxes), "map50": metrics.map_at(tboxes, pboxes)}
    if len(scored) == 1:
        return {k: round(v, 6) for k, v in next(iter(scored.values())).items()}
    return {f"{name}.{k}": round(v, 6) for name, values in scored.items() for k, v in values.items()}
