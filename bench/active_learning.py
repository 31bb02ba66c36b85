"""Does active learning save labels? A simulated labelling loop, strategy vs random.

Why a simulation: the claim "label the least-confident tasks first" is only
worth a setting if it measurably beats labelling at random. This replays a
labelling project on data that ships with scikit-learn: start from a small
random labelled set, let each strategy choose the next ``k`` tasks from the
unlabelled pool (their labels are revealed, as if a person labelled them),
retrain, and score accuracy on a held-out test set after every round.

The strategies are the ones a backend can switch on (``lsml.sampling``):
``least_confidence``, ``margin``, ``entropy``, ``margin+diverse`` (margin
filtered then clustered so a batch is not near-duplicates), plus pure
diversity (``k_center``) and ``random`` as the baseline.

Headline: for each strategy and dataset, the number of labels at which its
seed-averaged learning curve first reaches random sampling's final
seed-averaged accuracy, divided by random's final label count. A strategy's
ratio is its worst over the datasets; the best strategy's ratio is printed
as the last line: ``labels needed vs random: <ratio>``.

Run (about 1-2 minutes on 2 cores)::

    .venv/bin/python bench/active_learning.py

Writes ``bench/results/active_learning.csv`` (one row per dataset, strategy,
seed, round) and ``bench/results/active_learning.png`` (learning curves).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from lsml import sampling  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Scenario:
    """One dataset and its labelling budget (initial labels, batch size, rounds)."""

    name: str
    load: Callable
    initial: int
    batch: int
    rounds: int


SCENARIOS = (
    Scenario("digits", load_digits, initial=20, batch=10, rounds=25),
    Scenario("breast_cancer", load_breast_cancer, initial=10, batch=5, rounds=20),
)

STRATEGIES = ("random", "least_confidence", "margin", "entropy", "margin+diverse", "k_center")


def choose(
    strategy: str, model, x_pool: np.ndarray, x_labelled: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Indices (into ``x_pool``) of the next ``k`` tasks to label under ``strategy``."""
    if strategy == "random":
        return rng.choice(len(x_pool), size=min(k, len(x_pool)), replace=False)
    if strategy == "k_center":
        return sampling.k_center_greedy(x_pool, k, reference=x_labelled)
    probabilities = model.predict_proba(x_pool)
    if strategy == "margin+diverse":
        scores = sampling.informativeness(probabilities, "margin")
        return sampling.diverse_batch(scores, x_pool, k, pool_factor=5, seed=int(rng.integers(1 << 31)))
    return sampling.top_k(sampling.informativeness(probabilities, strategy), k)


def new_model() -> LogisticRegression:
    return LogisticRegression(max_iter=2000, C=1.0)


def run_loop(scenario: Scenario, strategy: str, seed: int) -> list[tuple[int, float]]:
    """One simulated project: returns (labels used, test accuracy) per round."""
    data = scenario.load()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, random_state=seed, stratify=data.target
    )
    scaler = StandardScaler().fit(x_train)  # unsupervised: uses no labels
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    rng = np.random.default_rng(seed)
    # Same initial labelled set for every strategy of a seed; at least two classes.
    while True:
        labelled = rng.choice(len(x_train), size=scenario.initial, replace=False)
        if len(np.unique(y_train[labelled])) > 1:
            break
    labelled = list(labelled)
    strategy_rng = np.random.default_rng(seed + 1000)
    curve = []
    for round_no in range(scenario.rounds + 1):
        model = new_model().fit(x_train[labelled], y_train[labelled])
        curve.append((len(labelled), float((model.predict(x_test) == y_test).mean())))
        if round_no == scenario.rounds:
            break
        pool = np.setdiff1d(np.arange(len(x_train)), labelled)
        picked = choose(strategy, model, x_train[pool], x_train[labelled], scenario.batch, strategy_rng)
        labelled.extend(int(i) for i in pool[picked])
    return curve


def labels_to_reach(labels: np.ndarray, accuracy: np.ndarray, target: float) -> float:
    """First label count whose accuracy is >= target (inf if never)."""
    hit = np.nonzero(accuracy >= target - 1e-12)[0]
    return float(labels[hit[0]]) if hit.size else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (>= 1), default 5")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the CSV and PNG")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    rows = []
    curves: dict[tuple[str, str], np.ndarray] = {}
    labels_axis: dict[str, np.ndarray] = {}
    for scenario in SCENARIOS:
        for strategy in STRATEGIES:
            per_seed = []
            for seed in range(args.seeds):
                curve = run_loop(scenario, strategy, seed)
                per_seed.append([acc for _, acc in curve])
                labels_axis[scenario.name] = np.array([n for n, _ in curve])
                rows.extend((scenario.name, strategy, seed, r, n, f"{acc:.4f}") for r, (n, acc) in enumerate(curve))
            curves[(scenario.name, strategy)] = np.array(per_seed)

    csv_path = args.out / "active_learning.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dataset", "strategy", "seed", "round", "labels", "accuracy"])
        writer.writerows(rows)

    # Ratios on the seed-averaged curves.
    print(f"{'dataset':<14} {'strategy':<17} {'final acc':>9} {'labels to reach random final':>29} {'ratio':>6}")
    ratios: dict[str, dict[str, float]] = {s: {} for s in STRATEGIES}
    for scenario in SCENARIOS:
        labels = labels_axis[scenario.name]
        target = curves[(scenario.name, "random")].mean(axis=0)[-1]
        for strategy in STRATEGIES:
            mean = curves[(scenario.name, strategy)].mean(axis=0)
            needed = labels_to_reach(labels, mean, target)
            ratio = needed / labels[-1]
            ratios[strategy][scenario.name] = ratio
            print(f"{scenario.name:<14} {strategy:<17} {mean[-1]:>9.4f} {needed:>29.0f} {ratio:>6.2f}")

    plot(args.out / "active_learning.png", curves, labels_axis)
    worst = {s: max(r.values()) for s, r in ratios.items() if s != "random"}
    best = min(worst, key=worst.get)
    print(
        f"seeds: {args.seeds}; wall time {time.perf_counter() - started:.1f}s; wrote {csv_path} and active_learning.png"
    )
    detail = ", ".join(f"{d} {r:.2f}" for d, r in ratios[best].items())
    print(f"best strategy: {best} (worst-dataset ratio; {detail})")
    print(f"labels needed vs random: {worst[best]:.2f}")
    return 0


def plot(path: Path, curves: dict[tuple[str, str], np.ndarray], labels_axis: dict[str, np.ndarray]) -> None:
    """Learning curves: mean accuracy over seeds; random and margin+diverse shaded +/- one std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SCENARIOS), figsize=(6 * len(SCENARIOS), 4.5))
    for ax, scenario in zip(np.atleast_1d(axes), SCENARIOS, strict=True):
        labels = labels_axis[scenario.name]
        target = curves[(scenario.name, "random")].mean(axis=0)[-1]
        for strategy in STRATEGIES:
            acc = curves[(scenario.name, strategy)]
            mean, std = acc.mean(axis=0), acc.std(axis=0)
            style = {"color": "black", "linestyle": "--", "linewidth": 2} if strategy == "random" else {}
            line = ax.plot(labels, mean, label=strategy, **style)[0]
            if strategy in ("random", "margin+diverse"):  # shade two bands only: more is unreadable
                ax.fill_between(labels, mean - std, mean + std, alpha=0.12, color=line.get_color())
        ax.axhline(target, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(f"{scenario.name}: {acc.shape[0]} seeds, +{scenario.batch} labels/round")
        ax.set_xlabel("labelled tasks")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
