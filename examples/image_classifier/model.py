"""Image classifier: scikit-learn on small images, a `Choices` tag over an `Image` tag.

Built for the digits of `make_dataset.py` (8x8 digits saved as PNGs), but any
small greyscale-able images work: each image is shrunk to 8x8 grey levels
(64 features), standardised, and fed to a logistic regression.

- Images are read through the SDK's `get_local_path`: a local path or
  `file://` URL is used as is when it lies under LSML_LOCAL_FILES_ROOTS
  (refused otherwise); a Label Studio URL (`/data/upload/...`,
  `/data/local-files/?d=...`) is downloaded with the project's token and
  cached under `MODEL_DIR/.lsml/media`.
- Training: annotation events update the training set kept in the previous
  version (features are stored, so an image is downloaded once);
  START_TRAINING rebuilds it from every annotated task (Label Studio's API,
  or the `annotations` list of the legacy /train call).
- Predictions: the most probable digit, every class probability in the
  result item's `probabilities` (the lsml convention `label-studio-ml sample`
  reads), and `score` from the active-learning strategy
  (`LSML_SCORE_STRATEGY`, default `margin` here): low score = most
  informative, so sort "Prediction score" ascending in Label Studio.
"""

from __future__ import annotations

import json
import logging

import joblib
import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lsml import LabelStudioMLBase
from lsml.active_learning import choices_predictions, configured_strategy
from lsml.annotations import first_choice, updated_training_set

logger = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
DATASET_FILE = "dataset.json"
SIDE = 8  # images are compared as SIDE x SIDE grey levels
DEFAULT_STRATEGY = "margin"


def image_features(path: str) -> list[float]:
    """64 grey levels in [0, 1] (dark background = 0), whatever the image's size and mode."""
    with Image.open(path) as image:
        small = image.convert("L").resize((SIDE, SIDE), Image.Resampling.BOX)
    return (np.asarray(small, dtype=float).ravel() / 255.0).round(5).tolist()


class ImageClassifier(LabelStudioMLBase):
    def setup(self):
        self.strategy = configured_strategy(self.settings, DEFAULT_STRATEGY)
        self.pipeline = None
        self.dataset: dict[str, dict] = {}  # task id -> {"features", "label", "annotation"}
        self.from_name = self.to_name = self.value = None
        self.labels: list[str] = []
        if self.parsed_label_config:
            try:
                self.from_name, self.to_name, self.value = self.get_first_tag_occurence("Choices", "Image")
                self.labels = self.parsed_label_config[self.from_name]["labels"]
            except ValueError:
                logger.warning("project %s: the label config has no Choices over an Image tag", self.project_id)
        if self.version_dir is not None:
            if (self.version_dir / DATASET_FILE).exists():
                self.dataset = json.loads((self.version_dir / DATASET_FILE).read_text(encoding="utf-8"))
            if (self.version_dir / MODEL_FILE).exists():
                self.pipeline = joblib.load(self.version_dir / MODEL_FILE)
        # Columns of predict_proba whose class is still a label of the config.
        self._columns: list[int] = []
        self._classes: list[str] = []
        if self.pipeline is not None:
            for column, cls in enumerate(self.pipeline.classes_):
                if not self.labels or str(cls) in self.labels:
                    self._columns.append(column)
                    self._classes.append(str(cls))

    # ---- predict -----------------------------------------------------------
    def predict(self, tasks, context=None, **kwargs):
        if self.pipeline is None or not self._columns or self.value is None:
            return [[] for _ in tasks]  # untrained: no prediction, Label Studio stores nothing and asks later
        features, ok = [], []
        for task in tasks:
            try:
                features.append(self._features(task))
                ok.append(True)
            except Exception as exc:  # one unreadable image must not fail the whole batch
                logger.warning(
                    "project %s: task %s: cannot read image (%s: %s)",
                    self.project_id,
                    task.get("id"),
                    type(exc).__name__,
                    exc,
                )
                features.append([0.0] * SIDE * SIDE)
                ok.append(False)
        probabilities = self.pipeline.predict_proba(np.asarray(features))[:, self._columns]
        predictions = choices_predictions(probabilities, self._classes, self.from_name, self.to_name, self.strategy)
        return [p if good else [] for p, good in zip(predictions, ok, strict=True)]  # unreadable: no prediction

    # ---- fit -----------------------------------------------------------------
    def fit(self, event, data, **kwargs):
        if self.from_name is None:
            raise ValueError("cannot train: the label config has no Choices tag over an Image tag")
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
        x = np.array([row["features"] for row in dataset.values()])
        y = [row["label"] for row in dataset.values()]
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        pipeline.fit(x, y)
        joblib.dump(pipeline, self.output_dir / MODEL_FILE)
        return {"examples": len(dataset), "labels": labels, "trained": True}

    # ---- helpers -------------------------------------------------------------
    def _features(self, task: dict) -> list[float]:
        url = (task.get("data") or {}).get(self.value)
        if not isinstance(url, str) or not url:
            raise ValueError(f"task has no '{self.value}' image URL")
        return image_features(self.get_local_path(url, task_id=task.get("id")))

    def _row(self, task: dict, annotation: dict):
        label = first_choice(annotation, self.from_name)
        if label is None:
            return None
        try:
            features = self._features(task)
        except Exception as exc:
            logger.warning(
                "project %s: task %s left out of training: cannot read image (%s: %s)",
                self.project_id,
                task.get("id"),
                type(exc).__name__,
                exc,
            )
            return None
        return {"features": features, "label": label, "annotation": annotation.get("id")}
