"""TrainingRequest: the plain-data contract every queue carries."""

import json
import pickle

import pytest

from lsml.training.queue import STATUSES, TrainingRequest, job_status

pytestmark = pytest.mark.unit


def test_request_round_trips_and_merges():
    a = TrainingRequest("1", "ANNOTATION_CREATED", {"n": 1}, "<View/>")
    b = TrainingRequest("1", "START_TRAINING", {"n": 2})
    merged = a.merged_with(b)
    assert merged.event == "START_TRAINING" and merged.payload == {"n": 2} and merged.label_config == "<View/>"
    assert merged.coalesced == [{"event": "ANNOTATION_CREATED", "data": {"n": 1}}]
    assert TrainingRequest.from_dict(merged.to_dict()) == merged


def test_request_is_json_and_pickle_safe():
    r = TrainingRequest(
        "1", "ANNOTATION_CREATED", {"task": {"id": 1}}, "<View/>", coalesced=[{"event": "X", "data": {}}]
    )
    assert TrainingRequest.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert pickle.loads(pickle.dumps(r)) == r


def test_job_status_shape():
    st = job_status("j", "queued", project="1", extra=3)
    assert st == {"job": "j", "status": "queued", "project": "1", "error": None, "model_version": None, "extra": 3}
    assert STATUSES == ("queued", "started", "finished", "failed")
