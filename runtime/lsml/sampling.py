"""Active-learning scores and batch strategies (numpy only).

Why this module exists: Label Studio decides what people label next by the
``score`` of each task's prediction. Its "Uncertainty sampling" task order
(``projects/functions/next_task.py``) serves tasks by ``predictions__score``
ascending, and the Data Manager column "Prediction score" is the mean of a
task's prediction scores. So the number a backend returns as ``score`` *is*
its active-learning policy.

Two orientations are used here, and every public function says which one it
returns:

* **informativeness** (``informativeness()``, ``least_confidence()``,
  ``margin()``, ``entropy()``): higher = more worth labelling, in ``[0, 1]``.
  Selection code (``top_k``, ``diverse_batch``) takes this.
* **prediction score** (``prediction_score()``): ``1 - informativeness``, in
  ``[0, 1]``, *low = most informative*. This is what a backend puts in a
  prediction's ``score`` so that Label Studio's ascending order (uncertainty
  sampling, or sorting "Prediction score" ascending) shows the most
  informative task first. For the ``confidence`` strategy it is exactly the
  top class probability, the classic "model confidence" score.

Inputs are class probabilities, one row per sample. Rows that do not sum to
1 (vote counts, unnormalised scores) are rescaled to sum to 1; negative,
NaN or infinite values, empty input and all-zero rows raise ``ValueError``
instead of producing a silently wrong ranking. Apply ``softmax`` to logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "STRATEGIES",
    "DEFAULT_STRATEGY",
    "validate_strategy",
    "as_probabilities",
    "softmax",
    "confidence",
    "least_confidence",
    "margin",
    "entropy",
    "informativeness",
    "prediction_score",
    "top_k",
    "k_center_greedy",
    "diverse_batch",
]

DEFAULT_STRATEGY = "confidence"


def as_probabilities(probabilities: ArrayLike) -> np.ndarray:
    """Validate a ``(n_samples, n_classes)`` array and rescale rows to sum to 1.

    Why strict: a NaN or a negative value would sort somewhere arbitrary and
    quietly decide what a person labels next; failing loudly is cheaper.
    """
    try:
        p = np.asarray(probabilities, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"probabilities must be numeric, got {type(probabilities).__name__}: {exc}") from None
    if p.ndim != 2:
        raise ValueError(
            f"probabilities must be a 2-D array (n_samples, n_classes), got shape {p.shape}; "
            "wrap a single sample as [row]"
        )
    if p.shape[0] == 0:
        raise ValueError("probabilities is empty: no samples to score")
    if p.shape[1] == 0:
        raise ValueError("probabilities has 0 classes: each row needs at least one class probability")
    bad = ~np.isfinite(p)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"probabilities contain NaN or infinity (first in row {row}: {p[row].tolist()})")
    if (p < 0).any():
        row = int(np.argwhere(p < 0)[0][0])
        raise ValueError(f"probabilities must be >= 0 (row {row}: {p[row].tolist()}); use softmax() on logits first")
    sums = p.sum(axis=1)
    if (sums <= 0).any():
        row = int(np.argwhere(sums <= 0)[0][0])
        raise ValueError(f"probabilities row {row} sums to 0: cannot tell which class the model prefers")
    return p / sums[:, None]


def softmax(logits: ArrayLike) -> np.ndarray:
    """Turn raw model outputs (logits, decision-function values) into probabilities."""
    z = np.asarray(logits, dtype=float)
    if z.ndim != 2 or z.size == 0:
        raise ValueError(f"logits must be a non-empty 2-D array (n_samples, n_classes), got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("logits contain NaN or infinity")
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def confidence(probabilities: ArrayLike) -> np.ndarray:
    """Top class probability per row (NOT informativeness: high = sure).

    The plain "model confidence" score most backends return; its
    informativeness is ``1 - confidence``.
    """
    return as_probabilities(probabilities).max(axis=1)


def least_confidence(probabilities: ArrayLike) -> np.ndarray:
    """Informativeness ``(1 - max p) * C / (C - 1)``, scaled to ``[0, 1]``.

    The scaling makes a uniform prediction score 1 whatever the number of
    classes C, so scores stay comparable when a project adds a label. With a
    single class there is nothing to be unsure about: 0.
    """
    p = as_probabilities(probabilities)
    c = p.shape[1]
    if c == 1:
        return np.zeros(p.shape[0])
    return np.clip((1.0 - p.max(axis=1)) * c / (c - 1), 0.0, 1.0)


def margin(probabilities: ArrayLike) -> np.ndarray:
    """Informativeness ``1 - (p_top1 - p_top2)``: 1 when the two best classes tie.

    Why margin: it looks at the decision the model is actually torn between,
    ignoring how the remaining mass is spread. A single class has margin 1
    (top2 = 0), so informativeness 0.
    """
    p = as_probabilities(probabilities)
    if p.shape[1] == 1:
        return np.zeros(p.shape[0])
    top2 = np.partition(p, -2, axis=1)[:, -2:]
    return np.clip(1.0 - (top2[:, 1] - top2[:, 0]), 0.0, 1.0)


def entropy(probabilities: ArrayLike) -> np.ndarray:
    """Informativeness ``H(p) / log(C)``: Shannon entropy scaled to ``[0, 1]``.

    Zero probabilities contribute 0 (the limit of ``p log p``). A single class
    has entropy 0.
    """
    p = as_probabilities(probabilities)
    c = p.shape[1]
    if c == 1:
        return np.zeros(p.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return np.clip(-terms.sum(axis=1) / np.log(c), 0.0, 1.0)


def _confidence_informativeness(probabilities: ArrayLike) -> np.ndarray:
    return 1.0 - confidence(probabilities)


_INFORMATIVENESS: dict[str, Callable[[ArrayLike], np.ndarray]] = {
    "confidence": _confidence_informativeness,
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}

STRATEGIES: tuple[str, ...] = tuple(_INFORMATIVENESS)


def validate_strategy(strategy: str) -> str:
    """Return the canonical strategy name, or raise ``ValueError`` naming the choices.

    Accepts ``least-confidence`` as well as ``least_confidence`` (env vars and
    CLI flags are typed by people).
    """
    name = str(strategy).strip().lower().replace("-", "_")
    if name not in _INFORMATIVENESS:
        raise ValueError(f"unknown score strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    return name


def informativeness(probabilities: ArrayLike, strategy: str = DEFAULT_STRATEGY) -> np.ndarray:
    """Per-row informativeness in ``[0, 1]`` (higher = label it sooner) for ``strategy``."""
    return _INFORMATIVENESS[validate_strategy(strategy)](probabilities)


def prediction_score(probabilities: ArrayLike, strategy: str = DEFAULT_STRATEGY) -> np.ndarray:
    """The ``score`` to put in a Label Studio prediction: ``1 - informativeness``.

    Low = most informative, so Label Studio's ascending order (uncertainty
    sampling, or Data Manager "Prediction score" sorted ascending) serves the
    most informative tasks first. ``confidence`` gives the top probability.
    """
    return 1.0 - informativeness(probabilities, strategy)


def _as_vector(values: ArrayLike, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per sample), got shape {v.shape}")
    if v.size == 0:
        raise ValueError(f"{name} is empty: nothing to select from")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contain NaN or infinity (index {int(np.argwhere(~np.isfinite(v))[0][0])})")
    return v


def _as_features(features: ArrayLike, n: int | None = None) -> np.ndarray:
    x = np.asarray(features, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"features must be a non-empty 2-D array (n_samples, n_features), got shape {x.shape}")
    if n is not None and x.shape[0] != n:
        raise ValueError(f"features has {x.shape[0]} rows but there are {n} scores: one row per sample is needed")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinity")
    return x


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def top_k(scores: ArrayLike, k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``scores`` (informativeness), best first.

    Ties are broken by the lower index, so a run is reproducible. ``k`` larger
    than the pool returns the whole pool.
    """
    s = _as_vector(scores, "scores")
    k = _check_k(k)
    order = np.lexsort((np.arange(s.size), -s))  # primary: -score, secondary: index
    return order[: min(k, s.size)]


def _sq_dists(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] - 2.0 * x @ centers.T + (centers * centers).sum(1)[None, :]
    return np.maximum(d, 0.0)


def k_center_greedy(
    features: ArrayLike,
    k: int,
    *,
    already_selected: Sequence[int] | None = None,
    reference: ArrayLike | None = None,
) -> np.ndarray:
    """Pick ``k`` rows of ``features`` that cover the space (greedy k-center / core-set).

    Each step takes the row farthest from everything chosen so far (plus
    ``already_selected`` rows and ``reference`` points, e.g. the labelled
    set), so a batch never holds two near-duplicates while far-away regions
    are unlabelled. With nothing chosen yet it starts from the row closest
    to the mean (deterministic). Returns indices in pick order.
    """
    x = _as_features(features)
    k = _check_k(k)
    n = x.shape[0]
    min_d = np.full(n, np.inf)
    chosen: list[int] = []
    blocked = np.zeros(n, dtype=bool)
    if already_selected is not None and len(already_selected):
        idx = np.asarray(already_selected, dtype=int)
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"already_selected has indices outside 0..{n - 1}")
        min_d = np.minimum(min_d, _sq_dists(x, x[idx]).min(axis=1))
        blocked[idx] = True
    if reference is not None:
        ref = _as_features(reference)
        if ref.shape[1] != x.shape[1]:
            raise ValueError(f"reference has {ref.shape[1]} features, features has {x.shape[1]}")
        min_d = np.minimum(min_d, _sq_dists(x, ref).min(axis=1))
    available = n - int(blocked.sum())
    for _ in range(min(k, available)):
        if np.isinf(min_d[~blocked]).all():
            nxt = int(np.argmin(np.where(blocked, np.inf, _sq_dists(x, x.mean(0, keepdims=True))[:, 0])))
        else:
            nxt = int(np.argmax(np.where(blocked, -1.0, min_d)))
        chosen.append(nxt)
        blocked[nxt] = True
        min_d = np.minimum(min_d, _sq_dists(x, x[nxt : nxt + 1])[:, 0])
    return np.asarray(chosen, dtype=int)


def _kmeans(x: np.ndarray, k: int, weights: np.ndarray, rng: np.random.Generator, iters: int = 30) -> np.ndarray:
    """Weighted k-means (k-means++ start, Lloyd steps); returns a label per row."""
    n = x.shape[0]
    centers = [x[int(rng.choice(n, p=weights / weights.sum()))]]
    d = _sq_dists(x, np.asarray(centers))[:, 0]
    for _ in range(1, k):
        w = d * weights
        total = w.sum()
        i = int(rng.choice(n, p=w / total)) if total > 0 else int(rng.integers(n))
        centers.append(x[i])
        d = np.minimum(d, _sq_dists(x, x[i : i + 1])[:, 0])
    c = np.asarray(centers)
    labels = np.zeros(n, dtype=int)
    for step in range(iters):
        new = _sq_dists(x, c).argmin(axis=1)
        if step and (new == labels).all():
            break
        labels = new
        for j in range(k):
            members = labels == j
            if members.any():
                c[j] = np.average(x[members], axis=0, weights=weights[members])
    return labels


def diverse_batch(
    scores: ArrayLike,
    features: ArrayLike,
    k: int,
    *,
    pool_factor: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """A batch of ``k`` informative *and* different samples: filter, cluster, pick.

    Why: the top-50 by uncertainty are often 50 variants of one confusing
    case, and labelling all of them teaches the model one thing. Following
    "diverse mini-batch active learning" (Zhdanov 2019), this keeps the
    ``pool_factor * k`` most informative rows, clusters them into ``k``
    groups with k-means weighted by informativeness, and returns the most
    informative row of each group (best first). ``scores`` is informativeness
    (higher = better); ``features`` are embeddings or inputs, one row per score.
    """
    s = _as_vector(scores, "scores")
    x = _as_features(features, s.size)
    k = _check_k(k)
    if pool_factor < 1:
        raise ValueError(f"pool_factor must be >= 1, got {pool_factor}")
    if k >= s.size:
        return top_k(s, k)
    pool = top_k(s, min(s.size, pool_factor * k))
    if pool.size <= k:
        return pool
    # Weights proportional to informativeness (shifted if a caller passes negative scores), never 0.
    weights = s[pool] - min(float(s[pool].min()), 0.0) + 1e-3
    labels = _kmeans(x[pool], k, weights, np.random.default_rng(seed))
    picks: list[int] = []
    for j in np.unique(labels):
        members = pool[labels == j]
        picks.append(int(members[np.argmax(s[members])]))  # pool is best-first, argmax keeps the first tie
    if len(picks) < k:  # empty clusters: fill with the next most informative rows
        taken = set(picks)
        picks.extend(int(i) for i in pool if int(i) not in taken)
        picks = picks[:k]
    picks_arr = np.asarray(picks, dtype=int)
    return picks_arr[np.lexsort((picks_arr, -s[picks_arr]))]
