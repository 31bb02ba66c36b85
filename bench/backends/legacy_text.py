"""The benchmark model written for the legacy `label-studio-ml` 1.0.9 package.

Written the way that package's users wrote models: the pipeline is loaded in
`__init__` (1.0.9 builds the instance in /setup), `predict` returns a list of
prediction dicts. `bench/predict.py` turns this file into a backend with the
package's own `label-studio-ml init --script` and serves it with the gunicorn
command of the generated Dockerfile. BENCH_MODEL_PATH names the pickle.
"""

from __future__ import annotations

import os
import time

import textmodel

from label_studio_ml.model import LabelStudioMLBase


class LegacyTextClassifier(LabelStudioMLBase):
    """TF-IDF + logistic regression from `textmodel`, behind label-studio-ml 1.0.9."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pipeline = textmodel.load(os.environ["BENCH_MODEL_PATH"])

    def predict(self, tasks, **kwargs):
        return textmodel.predict_results(self.pipeline, tasks, "bench")


class SlowLoadingLegacyTextClassifier(LegacyTextClassifier):
    """The same model, whose loading takes BENCH_SETUP_SECONDS (default 5)."""

    def __init__(self, **kwargs):
        time.sleep(float(os.environ.get("BENCH_SETUP_SECONDS", "5")))
        super().__init__(**kwargs)


class NoOpLegacyTextClassifier(LegacyTextClassifier):
    """Answers like LegacyTextClassifier without running a model: the HTTP path's own cost."""

    def __init__(self, **kwargs):
        LabelStudioMLBase.__init__(self, **kwargs)

    def predict(self, tasks, **kwargs):
        return textmodel.constant_results(tasks, "bench")
