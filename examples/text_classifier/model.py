"""Text classifier: TF-IDF + logistic regression predicting a `Choices` tag over a `Text` tag.

- One model per project (lsml keeps versions per project), trained from the
  annotations Label Studio sends:
  * annotation events (ANNOTATION_CREATED/UPDATED/DELETED, ANNOTATIONS_DELETED)
    update the training set kept in the previous version and retrain;
    events coalesced while a training ran arrive as `coalesced`;
  * START_TRAINING carries only the project: all annotated tasks are fetched
    from Label Studio's API (URL and token from /setup, or LABEL_STUDIO_URL /
    LABEL_STUDIO_API_KEY); the first annotation event does the same when
    Label Studio is reachable, so annotations made before the backend was
    connected count too.
- Untrained (fewer than two distinct labels seen): predict returns no
  prediction (`[]`) per task: Label Studio stores nothing, shows the task as
  unpredicted and asks again once a trained version is served (an empty
  result with a score would be stored, counted and sorted first).
- Trained: the most probable label, every class probability in the result
  item (`probabilities`), and `score` from `LSML_SCORE_STRATEGY` (default
  `confidence` = the top probability; low score = most informative).
- Artifacts (`model.joblib`, `dataset.json`) are written to `output_dir` and
  loaded from `version_dir`.
"""

from __future__ import annotations

import json
import logging

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from lsml import LabelStudioMLBase
from lsml.active_learning import choices_predictions, configured_strategy
from lsml.annotations import first_choice, updated_training_set

logger = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
DATASET_FILE = "dataset.json"


class TextClassifier(LabelStudioMLBase):
    def setup(self):
        self.strategy = configured_strategy(self.settings, "confidence")
        self.pipeline = None
        self.dataset: dict[str, dict] = {}  # task id -> {"text", "label", "annotation"}
        self.from_name = self.to_name = self.value = None
        self.labels: list[str] = []
        if self.parsed_label_config:
            try:
                self.from_name, self.to_name, self.value = self.get_first_tag_occurence("Choices", "Text")
                self.labels = self.parsed_label_config[self.from_name]["labels"]
            except ValueError:
                logger.warning("project %s: the label config has no Choices over a Text tag", self.project_id)
        if self.version_dir is not None:
            dataset_file = self.version_dir / DATASET_FILE
            if dataset_file.exists():
                self.dataset = json.loads(dataset_file.read_text(encoding="utf-8"))
            model_file = self.version_dir / MODEL_FILE
            if model_file.exists():
                self.pipeline = joblib.load(model_file)
        self._allowed = None
        if self.pipeline is not None:
            classes = list(self.pipeline.classes_)
            allowed = np.array([c in self.labels for c in classes]) if self.labels else np.ones(len(classes), bool)
            self._classes = classes
            self._allowed = allowed if allowed.any() else None

    # ---- predict -----------------------------------------------------------
    def predict(self, tasks, context=None, **kwargs):
        if self.pipeline is None or self._allowed is None or self.value is None:
            return [[] for _ in tasks]  # no prediction: Label Studio stores nothing and asks again later
        texts = [str((task.get("data") or {}).get(self.value, "")) for task in tasks]
        probabilities = self.pipeline.predict_proba(texts)[:, self._allowed]  # labels still in the config
        labels = [c for c, ok in zip(self._classes, self._allowed, strict=True) if ok]
        return choices_predictions(probabilities, labels, self.from_name, self.to_name, self.strategy)

    # ---- fit -----------------------------------------------------------------
    def fit(self, event, data, **kwargs):
        if self.from_name is None:
            raise ValueError("cannot train: the label config has no Choices tag over a Text tag")
        dataset = updated_training_set(self, self.dataset, event, data, self._row, kwargs.get("coalesced"))
        (self.output_dir / DATASET_FILE).write_text(json.dumps(dataset), encoding="utf-8")
        labels = sorted({row["label"] for row in dataset.values()})
        if len(labels) < 2:
            logger.info(
                "project %s: %d examples, %d label(s): not enough to train yet",
                self.project_id,
                len(dataset),
                len(labels),
            )
            return {"examples": len(dataset), "labels": labels, "trained": False}
        texts = [row["text"] for row in dataset.values()]
        targets = [row["label"] for row in dataset.values()]
        pipeline = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=1000)
        )
        pipeline.fit(texts, targets)
        joblib.dump(pipeline, self.output_dir / MODEL_FILE)
        return {"examples": len(dataset), "labels": labels, "trained": True}

    # ---- helpers -------------------------------------------------------------
    def _row(self, task: dict, annotation: dict):
        """A training row for the task's annotation: its text and chosen label (None when unusable)."""
        label = first_choice(annotation, self.from_name)
        text = (task.get("data") or {}).get(self.value)
        if label is None or text is None:
            return None
        return {"text": str(text), "label": label, "annotation": annotation.get("id")}
