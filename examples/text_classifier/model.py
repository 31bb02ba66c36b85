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
- Untrained (fewer than two distinct labels seen): predict returns an empty
  result with score 0.0 per task, so Label Studio still gets one item per task.
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
            return [{"result": [], "score": 0.0} for _ in tasks]
        texts = [str((task.get("data") or {}).get(self.value, "")) for task in tasks]
        probabilities = self.pipeline.predict_proba(texts)[:, self._allowed]  # labels still in the config
        labels = [c for c, ok in zip(self._classes, self._allowed) if ok]
        return choices_predictions(probabilities, labels, self.from_name, self.to_name, self.strategy)

    # ---- fit -----------------------------------------------------------------
    def fit(self, event, data, **kwargs):
        if self.from_name is None:
            raise ValueError("cannot train: the label config has no Choices tag over a Text tag")
        dataset = dict(self.dataset)
        if event == "START_TRAINING":
            tasks = data.get("annotations")  # the legacy /train call sends annotated tasks
            dataset = self._dataset_from_tasks(tasks if isinstance(tasks, list) else self.fetch_annotated_tasks())
        else:
            if not dataset and self.get_label_studio_url():
                try:
                    dataset = self._dataset_from_tasks(self.fetch_annotated_tasks())
                except Exception as exc:  # Label Studio unreachable: learn from the events alone
                    logger.warning("project %s: could not fetch annotated tasks (%s); training on events only",
                                   self.project_id, type(exc).__name__)
            for item in list(kwargs.get("coalesced") or []) + [{"event": event, "data": data}]:
                self._apply_event(dataset, item["event"], item["data"] or {})
        (self.output_dir / DATASET_FILE).write_text(json.dumps(dataset), encoding="utf-8")
        labels = sorted({row["label"] for row in dataset.values()})
        if len(labels) < 2:
            logger.info("project %s: %d examples, %d label(s): not enough to train yet",
                        self.project_id, len(dataset), len(labels))
            return {"examples": len(dataset), "labels": labels, "trained": False}
        texts = [row["text"] for row in dataset.values()]
        targets = [row["label"] for row in dataset.values()]
        pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                                 LogisticRegression(max_iter=1000))
        pipeline.fit(texts, targets)
        joblib.dump(pipeline, self.output_dir / MODEL_FILE)
        return {"examples": len(dataset), "labels": labels, "trained": True}

    # ---- helpers -------------------------------------------------------------
    def _label_of(self, annotation: dict):
        if not annotation or annotation.get("was_cancelled"):
            return None
        for region in annotation.get("result") or []:
            if region.get("from_name") == self.from_name and region.get("type", "choices").lower() == "choices":
                choices = (region.get("value") or {}).get("choices") or []
                if choices:
                    return choices[0]
        return None

    def _row(self, task: dict, annotation: dict):
        label = self._label_of(annotation)
        text = (task.get("data") or {}).get(self.value)
        if label is None or text is None:
            return None
        return {"text": str(text), "label": label, "annotation": annotation.get("id")}

    def _dataset_from_tasks(self, tasks) -> dict:
        dataset = {}
        for task in tasks:
            annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
            annotations.sort(key=lambda a: (a.get("updated_at") or a.get("created_at") or "", a.get("id") or 0))
            for annotation in reversed(annotations):  # newest usable annotation wins
                row = self._row(task, annotation)
                if row is not None:
                    dataset[str(task.get("id"))] = row
                    break
        return dataset

    def _apply_event(self, dataset: dict, event: str, data: dict) -> None:
        task = data.get("task") or {}
        if event in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            row = self._row(task, data.get("annotation") or {})
            if row is not None and task.get("id") is not None:
                dataset[str(task["id"])] = row
            elif task.get("id") is not None:
                dataset.pop(str(task["id"]), None)
        elif event == "ANNOTATION_DELETED":
            if task.get("id") is not None:
                dataset.pop(str(task["id"]), None)
        elif event == "ANNOTATIONS_DELETED":
            deleted = {a.get("id") for a in data.get("annotations") or [] if isinstance(a, dict)}
            for key in [k for k, row in dataset.items() if row.get("annotation") in deleted]:
                del dataset[key]
