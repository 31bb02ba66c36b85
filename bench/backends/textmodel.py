"""The one text classifier both benchmarked backends serve.

Why one module: the comparison is only fair if lsml and the legacy
label-studio-ml 1.0.9 backend do exactly the same model work per request. Both
backend classes (`lsml_text.py`, `legacy_text.py`) are thin wrappers around
`load()` and `predict_results()` here. This file imports only the standard
library and scikit-learn, so it runs in lsml's venv and in the legacy venv.

The pipeline (TF-IDF + logistic regression) is trained once, on generated
text, by `train()`, and pickled; both servers unpickle the same file.
"""

from __future__ import annotations

import os
import pickle
import random
import struct
import time
from pathlib import Path
from typing import Any

# Imported at the top, as model files do: the import is part of starting the server, not of loading a model.
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

LABELS = ("Positive", "Negative", "Neutral")
FROM_NAME, TO_NAME = "sentiment", "text"
LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="sentiment" toName="text" choice="single">'
    + "".join(f'<Choice value="{label}"/>' for label in LABELS)
    + "</Choices></View>"
)
PROJECT = "1.1700000000"

# Words that make a sentence lean to one class, and filler shared by all.
_CLASS_WORDS = {
    "Positive": "great excellent love wonderful happy superb delightful fantastic pleasant recommend".split(),
    "Negative": "awful terrible hate broken angry poor disappointing useless refund worst".split(),
    "Neutral": "okay average delivered arrived package normal standard typical usual expected".split(),
}
_FILLER = (
    "the a this that product service order item was is it really quite very and but with "
    "for from my our their after before during today yesterday week month store online"
).split()


def make_text(rng: random.Random, label: str, words: int = 24) -> str:
    """A sentence of `words` words, a third of them typical of `label`."""
    out = [rng.choice(_CLASS_WORDS[label]) if rng.random() < 0.33 else rng.choice(_FILLER) for _ in range(words)]
    return " ".join(out)


def make_tasks(count: int, seed: int = 7) -> list[dict]:
    """`count` Label Studio tasks shaped like the ones Label Studio sends to /predict."""
    rng = random.Random(seed)
    return [
        {
            "id": 1000 + i,
            "data": {"text": make_text(rng, rng.choice(LABELS))},
            "meta": {},
            "annotations": [],
            "predictions": [],
            "project": 1,
        }
        for i in range(count)
    ]


def predict_body(tasks: list[dict]) -> dict:
    """The body Label Studio POSTs to /predict for `tasks`."""
    return {
        "tasks": tasks,
        "project": PROJECT,
        "label_config": LABEL_CONFIG,
        "params": {"login": None, "password": None, "context": None},
    }


def setup_body() -> dict:
    """The body Label Studio POSTs to /setup before predicting."""
    return {
        "project": PROJECT,
        "schema": LABEL_CONFIG,
        "hostname": "http://127.0.0.1:1",
        "access_token": "bench-not-a-secret",
        "extra_params": None,
    }


def train(path: Path, samples: int = 3000, seed: int = 1) -> Path:
    """Fit the pipeline on generated text and pickle it to `path` (deterministic)."""
    rng = random.Random(seed)
    labels = [rng.choice(LABELS) for _ in range(samples)]
    texts = [make_text(rng, label) for label in labels]
    pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=1000))
    pipeline.fit(texts, labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(pipeline, f)
    return path


def load(path: str | Path) -> Any:
    """Unpickle the pipeline written by `train()`."""
    with open(path, "rb") as f:
        return pickle.load(f)


_TIMINGS_DIR = os.environ.get("BENCH_TIMINGS_DIR")
_timings_fds: dict[str, int] = {}


def _record(seconds: float, cpu_seconds: float) -> None:
    """Append one predict duration and its thread CPU time (8 bytes each) to this process's files in
    BENCH_TIMINGS_DIR (`<pid>.bin`: wall, `<pid>.cpu`: CPU).

    Why: on a shared machine the predict time measured inside the server, on
    the very requests wrk times, is the noise-free peer of the HTTP latency,
    and its CPU time is the model's share of the server's CPU per request.
    One O_APPEND write per call is atomic across threads (a few microseconds,
    outside the timed span).
    """
    for suffix, value in (("bin", seconds), ("cpu", cpu_seconds)):
        fd = _timings_fds.get(suffix)
        if fd is None:
            fd = _timings_fds[suffix] = os.open(
                os.path.join(_TIMINGS_DIR, f"{os.getpid()}.{suffix}"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
            )
        os.write(fd, struct.pack("d", value))


def predict_results(pipeline: Any, tasks: list[dict], model_version: str) -> list[dict]:
    """One Label Studio prediction per task: the top class as a `choices` result, with its probability."""
    started, cpu = time.perf_counter(), time.thread_time()
    texts = [task["data"]["text"] for task in tasks]
    probabilities = pipeline.predict_proba(texts)
    classes = pipeline.classes_
    out = []
    for row in probabilities:
        best = int(row.argmax())
        out.append(
            {
                "result": [
                    {
                        "from_name": FROM_NAME,
                        "to_name": TO_NAME,
                        "type": "choices",
                        "value": {"choices": [str(classes[best])]},
                    }
                ],
                "score": float(row[best]),
                "model_version": model_version,
            }
        )
    if _TIMINGS_DIR:
        _record(time.perf_counter() - started, time.thread_time() - cpu)
    return out


def constant_results(tasks: list[dict], model_version: str) -> list[dict]:
    """What `predict_results` returns, same shape and size, without running a model.

    Why: served by a no-op model, it shows what the HTTP path alone costs
    (request in, JSON out) on the same machine at the same moment.
    """
    started, cpu = time.perf_counter(), time.thread_time()
    out = [
        {
            "result": [
                {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [LABELS[0]]}}
            ],
            "score": 0.9754590816283597,
            "model_version": model_version,
        }
        for _ in tasks
    ]
    if _TIMINGS_DIR:
        _record(time.perf_counter() - started, time.thread_time() - cpu)
    return out
