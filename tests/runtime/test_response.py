import pytest

from lsml import ModelResponse, PredictionValue
from lsml.response import serialize_predictions

pytestmark = pytest.mark.unit


def test_model_response_fills_versions_like_the_reference():
    r = ModelResponse(
        predictions=[PredictionValue(result=[{"a": 1}], score=0.5), [PredictionValue(result=[], model_version="mine")]]
    )
    assert not r.has_model_version()
    r.set_version("v2")
    assert r.predictions[0].model_version == "v2"
    assert r.predictions[1][0].model_version == "mine"
    dumped = r.model_dump()
    assert dumped["model_version"] == "v2"
    assert dumped["predictions"][0] == {"result": [{"a": 1}], "score": 0.5, "model_version": "v2"}


def test_serialize_accepts_dicts_values_and_lists():
    out = serialize_predictions([{"result": [], "score": 0.1}, PredictionValue(result=[{"x": 1}])], "v1")
    assert out == [
        {"result": [], "score": 0.1, "model_version": "v1"},
        {"result": [{"x": 1}], "score": None, "model_version": "v1"},
    ]
    out = serialize_predictions(ModelResponse(predictions=[{"result": []}], model_version="m"), "v1")
    assert out == [{"result": [], "model_version": "m"}]


@pytest.mark.parametrize("bad", [None, {"result": []}, [1]])
def test_serialize_rejects_wrong_shapes(bad):
    with pytest.raises(TypeError):
        serialize_predictions(bad, "v1")


def test_nan_and_infinite_scores_become_null_so_the_json_stays_valid():
    import json

    import numpy as np

    out = serialize_predictions(
        [
            {"result": [], "score": float("nan")},
            PredictionValue(result=[], score=np.inf),
            {"result": [], "score": np.float32("nan")},
            {"result": [], "score": 0.25},
        ],
        "v1",
    )
    assert [p["score"] for p in out] == [None, None, None, 0.25]
    json.dumps(out, allow_nan=False)  # strict JSON parsers accept it
