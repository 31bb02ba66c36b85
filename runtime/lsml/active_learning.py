"""Pick the next batch of tasks to label from a project's stored predictions.

Why this exists next to the backend's own ``score``: Label Studio's task
order looks at one number per task and never at a batch, so it cannot avoid
serving ten near-identical tasks in a row, cannot switch strategy without
re-predicting, and does nothing for a project whose predictions came from an
import. ``label-studio-ml sample`` reads what Label Studio already stores and
ranks it with ``lsml.sampling``.

Conventions (documented in docs/active-learning.md):

* Per-class probabilities travel inside a prediction's result: a ``choices``
  result item may carry ``"probabilities": {"<label>": <p>, ...}`` next to
  ``from_name``/``to_name``/``type``/``value``. Label Studio stores result
  items as they are, so the numbers survive import and ``/predict``. lsml's
  examples write it; :func:`choices_result` builds such an item.
* A prediction without probabilities is ranked by its ``score``, read as
  lsml orients it: in ``[0, 1]``, low = uncertain (informativeness is
  ``1 - score``).
* Tasks with a non-cancelled annotation are skipped (already labelled);
  tasks with no usable prediction are counted and left out of the ranking.
* Of several predictions on one task the newest is used, or the newest of
  ``model_version`` when one is given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lsml import sampling

PROBABILITIES_KEY = "probabilities"
DEFAULT_VIEW_TITLE = "lsml: next batch"


@dataclass(frozen=True)
class Candidate:
    """One unlabelled task with its informativeness (higher = label sooner)."""

    task_id: int
    informativeness: float
    prediction_score: float | None
    source: str  # "probabilities" or "score"
    model_version: str | None = None
    probabilities: dict[str, float] | None = field(default=None, repr=False)


@dataclass
class Batch:
    """What `sample_next_batch` found: the chosen tasks, best first, and what was left out and why."""

    project: int
    strategy: str
    k: int
    selected: list[Candidate]
    total_tasks: int = 0
    labelled: int = 0
    without_prediction: int = 0
    scored: int = 0
    diverse: bool = False
    notes: list[str] = field(default_factory=list)
    view: dict | None = None

    @property
    def task_ids(self) -> list[int]:
        return [c.task_id for c in self.selected]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["task_ids"] = self.task_ids
        for item in out["selected"]:
            item.pop("probabilities", None)
        return out


def choices_result(from_name: str, to_name: str, labels: Sequence[str], probabilities: Sequence[float]) -> dict:
    """A Label Studio ``choices`` result item naming the top label and carrying every class probability."""
    if len(labels) != len(probabilities) or not labels:
        raise ValueError(f"need one probability per label, got {len(labels)} labels and {len(probabilities)} values")
    p = np.asarray(probabilities, dtype=float)
    top = int(np.argmax(p))
    return {
        "from_name": from_name,
        "to_name": to_name,
        "type": "choices",
        "value": {"choices": [str(labels[top])]},
        PROBABILITIES_KEY: {str(label): round(float(v), 6) for label, v in zip(labels, p, strict=True)},
    }


def configured_strategy(settings: Any, default: str = sampling.DEFAULT_STRATEGY) -> str:
    """The score strategy a backend uses: ``LSML_SCORE_STRATEGY`` (``settings.score_strategy``) or ``default``.

    Raises ``ValueError`` naming the valid choices, so a typo in the env var
    fails the model's setup (Label Studio shows the message) instead of
    silently ordering tasks by the wrong number.
    """
    configured = getattr(settings, "score_strategy", None)
    try:
        return sampling.validate_strategy(configured or default)
    except ValueError as exc:
        raise ValueError(f"LSML_SCORE_STRATEGY: {exc}") from None


def choices_predictions(
    probabilities: Any, labels: Sequence[str], from_name: str, to_name: str, strategy: str
) -> list[dict]:
    """One Label Studio prediction per row: the top label, every class probability, and the strategy's score.

    ``score`` is ``sampling.prediction_score`` (low = most informative), so
    Label Studio's ascending order by prediction score serves the most
    informative tasks first.
    """
    p = sampling.as_probabilities(probabilities)
    if p.shape[1] != len(labels):
        raise ValueError(f"{p.shape[1]} probability columns but {len(labels)} labels")
    scores = sampling.prediction_score(p, strategy)
    return [
        {"result": [choices_result(from_name, to_name, labels, row)], "score": round(float(score), 6)}
        for row, score in zip(p, scores, strict=True)
    ]


def prediction_probabilities(prediction: Mapping[str, Any]) -> dict[str, float] | None:
    """The per-class probabilities a prediction carries (first result item that has them), else None.

    Malformed values (non-numbers, NaN, negative, empty) count as absent, so one
    bad prediction falls back to its score instead of failing a whole project.
    """
    for item in prediction.get("result") or []:
        if not isinstance(item, Mapping):
            continue
        probs = item.get(PROBABILITIES_KEY)
        if not isinstance(probs, Mapping) or not probs:
            continue
        try:
            values = {str(k): float(v) for k, v in probs.items()}
        except (TypeError, ValueError):
            continue
        if all(math.isfinite(v) and v >= 0 for v in values.values()) and sum(values.values()) > 0:
            return values
    return None


def is_labelled(task: Mapping[str, Any]) -> bool:
    """True when someone submitted a (non-cancelled) annotation for the task."""
    annotations = task.get("annotations")
    if isinstance(annotations, list):
        return any(not a.get("was_cancelled") for a in annotations if isinstance(a, Mapping))
    return bool(task.get("is_labeled") or task.get("total_annotations"))


def _pick_prediction(predictions: Any, model_version: str | None) -> Mapping[str, Any] | None:
    if not isinstance(predictions, list):
        return None
    usable = [p for p in predictions if isinstance(p, Mapping)]
    if model_version is not None:
        usable = [p for p in usable if str(p.get("model_version")) == model_version]
    if not usable:
        return None
    # Newest: created_at when present (ISO strings sort), else the highest id.
    return max(usable, key=lambda p: (str(p.get("created_at") or ""), p.get("id") or 0))


def score_task(task: Mapping[str, Any], strategy: str, model_version: str | None = None) -> Candidate | None:
    """Rank one task from its stored prediction; None when it has nothing usable."""
    prediction = _pick_prediction(task.get("predictions"), model_version)
    if prediction is None:
        return None
    version = prediction.get("model_version")
    raw_score = prediction.get("score")
    stored = float(raw_score) if isinstance(raw_score, (int, float)) and math.isfinite(raw_score) else None
    probs = prediction_probabilities(prediction)
    if probs is not None:
        info = float(sampling.informativeness([list(probs.values())], strategy)[0])
        return Candidate(int(task["id"]), info, stored, "probabilities", version, probs)
    if stored is not None:
        return Candidate(int(task["id"]), 1.0 - stored, stored, "score", version)
    return None


def rank_tasks(
    tasks: Iterable[Mapping[str, Any]],
    strategy: str,
    k: int,
    *,
    project: int = 0,
    model_version: str | None = None,
    diverse: bool = False,
    seed: int = 0,
) -> Batch:
    """Choose ``k`` unlabelled tasks, most informative first (pure: no network).

    With ``diverse`` the batch is drawn by ``sampling.diverse_batch`` on the
    tasks' probability vectors, so the batch covers different confusions
    (3-vs-8 and 4-vs-9, not ten 3-vs-8) when probabilities are stored.
    """
    strategy = sampling.validate_strategy(strategy)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    batch = Batch(project=project, strategy=strategy, k=k, selected=[], diverse=False)
    candidates: list[Candidate] = []
    for task in tasks:
        batch.total_tasks += 1
        if is_labelled(task):
            batch.labelled += 1
            continue
        candidate = score_task(task, strategy, model_version)
        if candidate is None:
            batch.without_prediction += 1
            continue
        candidates.append(candidate)
    batch.scored = len(candidates)
    if batch.without_prediction:
        version = f" of model version {model_version!r}" if model_version else ""
        batch.notes.append(
            f"{batch.without_prediction} unlabelled task(s) have no usable prediction{version} and were not ranked; "
            "get predictions first (Data Manager > Actions > Retrieve predictions)"
        )
    if not candidates:
        return batch
    if any(c.source == "score" for c in candidates):
        n = sum(c.source == "score" for c in candidates)
        batch.notes.append(f"{n} task(s) were ranked by their prediction score (no per-class probabilities stored)")
    # Stable order for ties: task id.
    candidates.sort(key=lambda c: c.task_id)
    info = np.array([c.informativeness for c in candidates])
    if diverse and k < len(candidates):
        labels = sorted({label for c in candidates if c.probabilities for label in c.probabilities})
        if labels and all(c.probabilities for c in candidates):
            features = np.array([[(c.probabilities or {}).get(label, 0.0) for label in labels] for c in candidates])
            features = features / features.sum(axis=1, keepdims=True)
            order = sampling.diverse_batch(info, features, k, seed=seed)
            batch.diverse = True
        else:
            batch.notes.append("--diverse needs per-class probabilities on every candidate; used plain top-k")
            order = sampling.top_k(info, k)
    else:
        order = sampling.top_k(info, k)
    batch.selected = [candidates[int(i)] for i in order]
    return batch


def sample_next_batch(
    client: Any,
    project: int,
    strategy: str,
    k: int,
    *,
    page_size: int = 500,
    model_version: str | None = None,
    diverse: bool = False,
    apply: bool = False,
    view_title: str = DEFAULT_VIEW_TITLE,
) -> Batch:
    """Read every task of ``project`` (paginated) through ``client`` and rank them.

    ``client`` is a ``lsml.labelstudio.LabelStudioClient``; its
    ``LabelStudioError`` propagates with Label Studio's message. With
    ``apply`` the batch becomes a Data Manager tab (see :func:`apply_as_view`).
    """
    tasks = client.iter_tasks(int(project), page_size, fields="all")
    batch = rank_tasks(tasks, strategy, k, project=int(project), model_version=model_version, diverse=diverse)
    if apply and batch.selected:
        batch.view = apply_as_view(client, int(project), batch.task_ids, view_title)
    return batch


def view_payload(project: int, task_ids: Sequence[int], title: str) -> dict:
    """A Data Manager tab showing exactly ``task_ids`` (an OR of ``id = n`` filters), sorted by prediction score."""
    if not task_ids:
        raise ValueError("no task ids to put in a view")
    items = [{"filter": "filter:tasks:id", "operator": "equal", "type": "Number", "value": int(t)} for t in task_ids]
    return {
        "project": int(project),
        "data": {
            "title": title,
            "filters": {"conjunction": "or", "items": items},
            "ordering": ["tasks:predictions_score"],
        },
    }


def apply_as_view(client: Any, project: int, task_ids: Sequence[int], title: str = DEFAULT_VIEW_TITLE) -> dict:
    """Create, or replace the filters of, the Data Manager tab named ``title``.

    Why a tab: it changes nothing in the tasks or their annotations, a person
    sees "the next batch" as one click in the Data Manager, and running the
    command again moves the same tab to the new batch instead of piling up
    tabs. Returns ``{"id", "title", "created", "url"}``.
    """
    payload = view_payload(project, task_ids, title)
    existing = None
    for view in client.get_json("/api/dm/views/", params={"project": int(project)}) or []:
        if isinstance(view, Mapping) and (view.get("data") or {}).get("title") == title:
            existing = view
            break
    if existing is None:
        view = client.post_json("/api/dm/views/", payload)
        created = True
    else:
        view = client.patch_json(f"/api/dm/views/{int(existing['id'])}/", payload)
        created = False
    view_id = int(view["id"])
    return {
        "id": view_id,
        "title": title,
        "created": created,
        "url": client.absolute_url(f"/projects/{int(project)}/data?tab={view_id}"),
    }
