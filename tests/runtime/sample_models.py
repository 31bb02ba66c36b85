"""Small models the runtime tests serve and train."""

from __future__ import annotations

import json
import threading
import time

from lsml import LabelStudioMLBase, ModelResponse, PredictionValue


class CountingModel(LabelStudioMLBase):
    """Predicts the first label; fit writes a file; counts instances built."""

    built = 0
    fit_calls: list = []

    def setup(self):
        type(self).built += 1
        self.trained_on = None
        if self.version_dir is not None:
            self.trained_on = json.loads((self.version_dir / "fit.json").read_text())

    def predict(self, tasks, context=None, **kwargs):
        from_name, to_name, _ = self.get_first_tag_occurence("Choices", "Text")
        label = self.parsed_label_config[from_name]["labels"][0]
        return [
            {
                "result": [
                    {"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [label]}}
                ],
                "score": 0.75,
            }
            for _ in tasks
        ]

    def fit(self, event, data, **kwargs):
        type(self).fit_calls.append((self.project_id, event, kwargs.get("coalesced")))
        (self.output_dir / "fit.json").write_text(json.dumps({"event": event}))
        return {"ok": True}


class ResponseModel(CountingModel):
    def predict(self, tasks, context=None, **kwargs):
        return ModelResponse(predictions=[PredictionValue(result=[], score=0.1) for _ in tasks])


class SlowSetupModel(CountingModel):
    setup_seconds = 1.5

    def setup(self):
        time.sleep(self.setup_seconds)
        super().setup()


class SlowPredictModel(CountingModel):
    running = 0
    peak = 0
    lock = threading.Lock()
    delay = 0.3

    def predict(self, tasks, context=None, **kwargs):
        cls = type(self)
        with cls.lock:
            cls.running += 1
            cls.peak = max(cls.peak, cls.running)
        try:
            time.sleep(cls.delay)
            return super().predict(tasks, context)
        finally:
            with cls.lock:
                cls.running -= 1


class BrokenPredictModel(CountingModel):
    def predict(self, tasks, context=None, **kwargs):
        raise ValueError("secret-token-abc leaked in a message")


class BadReturnModel(CountingModel):
    def predict(self, tasks, context=None, **kwargs):
        return {"not": "a list"}


class FailingFitModel(CountingModel):
    def fit(self, event, data, **kwargs):
        (self.output_dir / "half-written").write_text("x")
        raise RuntimeError("fit crashed")


class NoPublishModel(CountingModel):
    def fit(self, event, data, **kwargs):
        return False


class BrokenSetupModel(CountingModel):
    def setup(self):
        raise RuntimeError("cannot load weights")
