"""Quality metrics of predictions against annotations, numpy only (no scikit-learn at run time).

Each function takes plain Python values already pulled out of Label Studio's
results (`lsml.evaluation.scoring` does that by control type) and returns
floats in [0, 1]. The definitions follow scikit-learn's and the Pascal VOC
ones, so the tests can use scikit-learn as an oracle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: A predicted class that stands for "no prediction": never a true label, so it is always wrong.
MISSING = "\x00missing"


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Share of items whose predicted class is the true one (0.0 for no items)."""
    if not y_true:
        return 0.0
    return float(np.mean(np.asarray(y_true, dtype=object) == np.asarray(y_pred, dtype=object)))


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Unweighted mean of the per-class F1 over the classes seen in either list (scikit-learn's
    `f1_score(average="macro")`, a class with no true and no predicted item scoring 0), `MISSING` excluded."""
    labels = sorted((set(y_true) | set(y_pred)) - {MISSING})
    if not labels:
        return 0.0
    t = np.asarray(y_true, dtype=object)
    p = np.asarray(y_pred, dtype=object)
    scores = []
    for label in labels:
        tp = float(np.sum((t == label) & (p == label)))
        fp = float(np.sum((t != label) & (p == label)))
        fn = float(np.sum((t == label) & (p != label)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


Span = tuple[int, int, str]


def span_f1(true_spans: Sequence[set[Span]], pred_spans: Sequence[set[Span]]) -> float:
    """Micro F1 of exact span matches (start, end and label all equal) over every item.

    1.0 when neither side has a span (nothing to find, nothing invented)."""
    tp = fp = fn = 0
    for truth, pred in zip(true_spans, pred_spans, strict=True):
        hit = len(truth & pred)
        tp += hit
        fp += len(pred) - hit
        fn += len(truth) - hit
    if tp + fp + fn == 0:
        return 1.0
    return 2 * tp / (2 * tp + fp + fn)


Box = tuple[float, float, float, float]  # x, y, width, height (Label Studio's percent units)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes given as (x, y, width, height)."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    h = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def mean_iou(true_boxes: Sequence[list[tuple[Box, str]]], pred_boxes: Sequence[list[tuple[Box, str, float]]]) -> float:
    """Mean, over every annotated box, of its best IoU with a predicted box of the same label (0 for none).

    1.0 when nothing was annotated anywhere."""
    best: list[float] = []
    for truth, pred in zip(true_boxes, pred_boxes, strict=True):
        for box, label in truth:
            best.append(max((iou(box, p) for p, plabel, _ in pred if plabel == label), default=0.0))
    return float(np.mean(best)) if best else 1.0


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision/recall curve with precision made monotone (Pascal VOC 2010+, every point)."""
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([0.0], precision, [0.0]))
    p = np.maximum.accumulate(p[::-1])[::-1]
    changes = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[changes + 1] - r[changes]) * p[changes + 1]))


def map_at(
    true_boxes: Sequence[list[tuple[Box, str]]],
    pred_boxes: Sequence[list[tuple[Box, str, float]]],
    threshold: float = 0.5,
) -> float:
    """Mean average precision at an IoU threshold, over the labels that have annotated boxes.

    Predictions of a label are taken by score, highest first; each matches the
    unmatched annotated box of its item and label with the highest IoU, when that
    IoU is at least `threshold` (else it is a false positive)."""
    labels = sorted({label for truth in true_boxes for _, label in truth})
    if not labels:
        return 1.0
    aps = []
    for label in labels:
        n_true = sum(1 for truth in true_boxes for _, lab in truth if lab == label)
        preds = [(score, item, box) for item, pred in enumerate(pred_boxes) for box, lab, score in pred if lab == label]
        preds.sort(key=lambda x: -x[0])
        used: set[tuple[int, int]] = set()
        tp = np.zeros(len(preds))
        for k, (_score, item, box) in enumerate(preds):
            candidates = [(iou(box, t), j) for j, (t, lab) in enumerate(true_boxes[item]) if lab == label]
            candidates = [c for c in candidates if (item, c[1]) not in used]
            if candidates:
                overlap, j = max(candidates)
                if overlap >= threshold:
                    used.add((item, j))
                    tp[k] = 1
        if not preds:
            aps.append(0.0)
            continue
        ctp = np.cumsum(tp)
        recall = ctp / n_true
        precision = ctp / np.arange(1, len(preds) + 1)
        aps.append(average_precision(recall, precision))
    return float(np.mean(aps))
