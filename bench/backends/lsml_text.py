"""The benchmark models written for lsml.

`TextClassifier` is the same model as `legacy_text.LegacyTextClassifier`
(both call `textmodel`); it loads the pickle named by BENCH_MODEL_PATH in
`setup()`, which lsml runs once per (process, project), off the request path.
`SlowLoadingTextClassifier` sleeps BENCH_SETUP_SECONDS (default 5) in
`setup()` first: the benchmark hammers /health and /setup while it loads.
`NoOpTextClassifier` answers the same JSON without a model.
`WaitingTextClassifier` waits BENCH_WAIT_SECONDS (default 0.02) without the GIL, then answers
like the no-op: a model whose predict waits on a GPU or a remote service.
"""

from __future__ import annotations

import os
import time

import textmodel

from lsml import LabelStudioMLBase


class TextClassifier(LabelStudioMLBase):
    """TF-IDF + logistic regression from `textmodel`, behind lsml."""

    def setup(self) -> None:
        self.pipeline = textmodel.load(os.environ["BENCH_MODEL_PATH"])

    def predict(self, tasks: list[dict], context: dict | None = None, **kwargs) -> list[dict]:
        return textmodel.predict_results(self.pipeline, tasks, "bench")


class SlowLoadingTextClassifier(TextClassifier):
    """A model whose loading takes BENCH_SETUP_SECONDS (a big checkpoint, say)."""

    def setup(self) -> None:
        time.sleep(float(os.environ.get("BENCH_SETUP_SECONDS", "5")))
        super().setup()


class NoOpTextClassifier(TextClassifier):
    """Answers like TextClassifier without running a model: the HTTP path's own cost."""

    def setup(self) -> None:
        pass

    def predict(self, tasks: list[dict], context: dict | None = None, **kwargs) -> list[dict]:
        return textmodel.constant_results(tasks, "bench")


class WaitingTextClassifier(NoOpTextClassifier):
    """A predict that waits (GIL released, as during a GPU kernel or a remote call), then answers."""

    def predict(self, tasks: list[dict], context: dict | None = None, **kwargs) -> list[dict]:
        time.sleep(float(os.environ.get("BENCH_WAIT_SECONDS", "0.02")))
        return super().predict(tasks, context, **kwargs)
