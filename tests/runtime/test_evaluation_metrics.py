"""The built-in quality metrics against hand-computed values, and scikit-learn as an oracle where it has them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score

from lsml.evaluation import metrics
from lsml.evaluation.gate import QualityGate, refusal
from lsml.evaluation.scoring import score_predictions
from lsml.evaluation.split import filter_payload, held_out_part, is_held_out, training_part


def test_accuracy_and_macro_f1_by_hand():
    y_true = ["a", "a", "b", "c"]
    y_pred = ["a", "b", "b", "b"]
    assert metrics.accuracy(y_true, y_pred) == 0.5
    # a: tp1 fn1 -> 2/3; b: tp1 fp2 -> 2/4; c: fn1 -> 0
    assert metrics.macro_f1(y_true, y_pred) == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_and_macro_f1_agree_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = ["cat", "dog", "bird", "fish"]
    y_true = list(rng.choice(labels, 60))
    y_pred = list(rng.choice(labels[:3], 60))
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred))
    assert metrics.macro_f1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_a_missing_prediction_is_wrong_and_no_class_of_its_own():
    y_true = ["a", "b"]
    y_pred = ["a", metrics.MISSING]
    assert metrics.accuracy(y_true, y_pred) == 0.5
    # a: f1 1; b: fn1 -> 0 (the missing prediction is not averaged as a class)
    assert metrics.macro_f1(y_true, y_pred) == pytest.approx(0.5)


def test_span_f1_by_hand():
    truth = [{(0, 5, "PER"), (10, 15, "ORG")}, {(3, 4, "LOC")}]
    pred = [{(0, 5, "PER"), (10, 15, "PER")}, set()]
    # tp 1, fp 1, fn 2 -> 2/(2+1+2)
    assert metrics.span_f1(truth, pred) == pytest.approx(2 / 5)
    assert metrics.span_f1([set()], [set()]) == 1.0


def test_iou_by_hand():
    assert metrics.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert metrics.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert metrics.iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_mean_iou_by_hand():
    truth = [[((0, 0, 10, 10), "car"), ((50, 50, 10, 10), "car")]]
    pred = [[((5, 0, 10, 10), "car", 0.9), ((50, 50, 10, 10), "person", 0.8)]]
    # first box: 1/3; second: no car predicted near it -> 0
    assert metrics.mean_iou(truth, pred) == pytest.approx((1 / 3 + 0) / 2)


def test_map50_by_hand_and_against_scikit_learn():
    # one label, three annotated boxes over two items, four predictions
    truth = [[((0, 0, 10, 10), "car"), ((20, 20, 10, 10), "car")], [((0, 0, 10, 10), "car")]]
    pred = [
        [((0, 0, 10, 10), "car", 0.9), ((60, 60, 10, 10), "car", 0.8), ((20, 21, 10, 10), "car", 0.4)],
        [((1, 0, 10, 10), "car", 0.7)],
    ]
    # by score: .9 TP, .8 FP, .7 TP, .4 TP -> precision at the recall steps: 1, 2/3, 3/4 -> AP
    # = 1/3*1 + 1/3*3/4 + 1/3*3/4 (precision made monotone: the 2/3 step is lifted to 3/4)
    expected = (1 + 0.75 + 0.75) / 3
    assert metrics.map_at(truth, pred) == pytest.approx(expected)
    # scikit-learn's AP does not make precision monotone (0.8056 here): the oracle holds where that changes
    # nothing, with the false positive ranked last; every annotated box is matched, so recall reaches 1
    pred[0][1] = ((60, 60, 10, 10), "car", 0.1)
    assert metrics.map_at(truth, pred) == pytest.approx(average_precision_score([1, 1, 1, 0], [0.9, 0.7, 0.4, 0.1]))
    assert average_precision_score([1, 0, 1, 1], [0.9, 0.8, 0.7, 0.4]) < expected  # the dip it would not lift


def test_map50_counts_a_duplicate_as_a_false_positive_and_a_missed_box_against_recall():
    truth = [[((0, 0, 10, 10), "car"), ((50, 50, 10, 10), "car")]]
    pred = [[((0, 0, 10, 10), "car", 0.9), ((0, 0, 10, 10), "car", 0.8)]]
    # .9 TP (recall 1/2, precision 1), .8 duplicate FP; the second box never found -> AP = 1/2
    assert metrics.map_at(truth, pred) == pytest.approx(0.5)


def _choice(label):
    return [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def test_scoring_reads_choices_from_the_label_config(text_config):
    tasks = [
        {"id": 1, "annotations": [{"id": 1, "result": _choice("Positive")}]},
        {"id": 2, "annotations": [{"id": 2, "result": _choice("Negative")}]},
        {"id": 3, "annotations": [{"id": 3, "result": _choice("Negative"), "was_cancelled": True}]},
    ]
    predictions = [{"result": _choice("Positive")}, {"result": _choice("Positive")}, {"result": []}]
    scores = score_predictions(text_config, tasks, predictions)
    assert scores["accuracy"] == 0.5  # task 3 has no usable annotation: not scored
    assert scores["macro_f1"] == pytest.approx(
        f1_score(["Positive", "Negative"], ["Positive", "Positive"], average="macro")
    )


def test_scoring_spans_and_rectangles():
    config = (
        '<View><Text name="text" value="$text"/><Labels name="ner" toName="text"><Label value="PER"/></Labels>'
        '<Image name="image" value="$image"/><RectangleLabels name="box" toName="image"><Label value="car"/>'
        "</RectangleLabels></View>"
    )
    span = {"from_name": "ner", "to_name": "text", "type": "labels", "value": {"start": 0, "end": 3, "labels": ["PER"]}}
    box = {
        "from_name": "box",
        "to_name": "image",
        "type": "rectanglelabels",
        "value": {"x": 0, "y": 0, "width": 10, "height": 10, "rectanglelabels": ["car"]},
    }
    tasks = [{"id": 1, "annotations": [{"id": 1, "result": [span, box]}]}]
    scores = score_predictions(config, tasks, [{"result": [span, box], "score": 0.9}])
    assert scores == {"ner.span_f1": 1.0, "box.mean_iou": 1.0, "box.map50": 1.0}


def test_the_split_is_deterministic_near_the_fraction_and_grows_monotonically():
    tasks = [{"id": i} for i in range(2000)]
    held = {t["id"] for t in held_out_part("7", tasks, 0.2)}
    assert held == {t["id"] for t in held_out_part("7", tasks, 0.2)}
    assert 300 < len(held) < 500
    assert held.isdisjoint(t["id"] for t in training_part("7", tasks, 0.2))
    assert held <= {t["id"] for t in held_out_part("7", tasks, 0.3)}
    assert not any(is_held_out("7", i, 0.0) for i in range(100))
    assert held != {t["id"] for t in held_out_part("8", tasks, 0.2)}  # per project


def test_a_start_training_payload_loses_its_held_out_tasks():
    tasks = [{"id": i} for i in range(200)]
    filtered = filter_payload("1", "START_TRAINING", {"annotations": tasks}, 0.5)
    assert filtered["annotations"] == list(training_part("1", tasks, 0.5))
    assert 0 < len(filtered["annotations"]) < 200


def test_gate_parsing_and_verdicts():
    assert QualityGate.parse(None) is None and QualityGate.parse(" ") is None
    gate = QualityGate.parse("accuracy:0.02")
    assert gate == QualityGate("accuracy", 0.02)
    assert QualityGate.parse("macro_f1") == QualityGate("macro_f1", 0.0)
    for bad in ("accuracy:x", ":0.1", "accuracy:2"):
        with pytest.raises(ValueError, match="LSML_QUALITY_GATE"):
            QualityGate.parse(bad)
    assert refusal(gate, {"accuracy": 0.81}, "v1", {"accuracy": 0.82}) is None  # within the tolerance
    why = refusal(gate, {"accuracy": 0.5}, "v1", {"accuracy": 0.82})
    assert why is not None and "v1" in why and "0.5000" in why
    assert refusal(gate, {}, "v1", {"accuracy": 0.82}) is not None  # unscored under a scored served version
    assert refusal(gate, {"accuracy": 0.1}, "v1", {}) is None  # nothing to compare with
    assert refusal(gate, {"accuracy": 0.1}, None, None) is None
