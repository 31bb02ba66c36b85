"""How much of each version's predictions do annotators keep? A simulated labelling run, end to end.

Why: acceptance (`lsml.acceptance`) is only worth showing if it measures what
annotators do. This runs a real Label Studio 1.23.2 and the example text
classifier (`examples/text_classifier`, TF-IDF + logistic regression) served by
lsml (one gunicorn process, the embedded training runner), and an *oracle
annotator* that knows every task's true label:

1. round 0: it labels `--first` tasks from scratch (the untrained model
   predicts nothing); Label Studio's webhooks train v1;
2. each later round: Label Studio retrieves predictions for the next `--batch`
   tasks from the version served now (its Data Manager action, as a person's
   "Retrieve predictions"); for each task the oracle opens the prediction and
   submits, with `parent_prediction` set as Label Studio's editor does, the
   prediction as is when its choice is right (accepted), or with the choice
   corrected (edited); its webhooks train the next version.

It reports, per model version, what lsml counted (`/versions`' `acceptance`)
next to what the oracle did, and fails if they differ. The texts are generated
(`bench/backends/textmodel.py`'s words, shorter sentences so early versions
err), no data set is downloaded.

With `--regress-round N` (issue 19's gate) the backend runs with the quality gate on
(`LSML_QUALITY_GATE=accuracy:<--tolerance>`, so every version is scored on the held-out
fifth of the tasks) and every fit during round N is broken on purpose (the example's
`fit`, then its pipeline retrained on labels shifted by one: `RegressingClassifier`
below, marked `regressed` in the version's metadata). It reports the versions
published, scored, regressed, and blocked (kept as candidates, never served), and
fails unless every regressed version was blocked.

    .venv/bin/python bench/acceptance.py                 # ~1 min: 300 tasks, 20 first, 6 rounds of 40
    .venv/bin/python bench/acceptance.py --out bench/results/acceptance.json
    .venv/bin/python bench/acceptance.py --regress-round 3 --out bench/results/acceptance-gate.json
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH / "backends"))

import textmodel  # noqa: E402

from harness import loadavg, machine  # noqa: E402
from tests.fixtures.label_studio import LabelStudioServer, find_label_studio_binary  # noqa: E402
from tests.fixtures.polling import wait_for  # noqa: E402
from tests.fixtures.rq_procs import Procs, start_server  # noqa: E402

EXAMPLE = REPO / "examples" / "text_classifier"
from lsml import setting_names  # noqa: E402

# The example with one switch: while the file REGRESS exists beside it, every fit publishes a broken model.
REGRESSING_MODEL = """
from pathlib import Path

import joblib

from model import MODEL_FILE, TextClassifier


class RegressingClassifier(TextClassifier):
    def fit(self, event, data, **kwargs):
        result = super().fit(event, data, **kwargs)
        if not Path(__file__).with_name("REGRESS").exists() or not (result or {}).get("trained"):
            return result
        rows = list(self.dataset_written().values())
        labels = sorted({row["label"] for row in rows})
        shifted = {label: labels[(i + 1) % len(labels)] for i, label in enumerate(labels)}
        pipeline = joblib.load(self.output_dir / MODEL_FILE)
        pipeline.fit([row["text"] for row in rows], [shifted[row["label"]] for row in rows])
        joblib.dump(pipeline, self.output_dir / MODEL_FILE)
        return {**result, "regressed": True}

    def dataset_written(self):
        import json

        return json.loads((self.output_dir / "dataset.json").read_text(encoding="utf-8"))
"""


def make_texts(count: int, words: int, seed: int) -> list[tuple[str, str]]:
    """(text, true label) pairs: `words` words, a quarter of them typical of the label."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        label = rng.choice(textmodel.LABELS)
        pool = textmodel._CLASS_WORDS[label]
        text = " ".join(
            rng.choice(pool) if rng.random() < 0.25 else rng.choice(textmodel._FILLER) for _ in range(words)
        )
        out.append((text, label))
    return out


def choice(label: str) -> list[dict]:
    return [
        {
            "from_name": textmodel.FROM_NAME,
            "to_name": textmodel.TO_NAME,
            "type": "choices",
            "value": {"choices": [label]},
        }
    ]


def queue_idle(url: str) -> bool:
    """The backend's training queue has nothing queued or running (its /metrics gauges)."""
    text = requests.get(url + "/metrics", timeout=5).text
    values = {}
    for line in text.splitlines():
        for name in ("lsml_training_queue_depth", "lsml_training_jobs_running"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    return values.get("lsml_training_queue_depth") == 0 and values.get("lsml_training_jobs_running") == 0


def versions(url: str, project: int) -> dict:
    return requests.get(url + "/versions", params={"project": project}, timeout=5).json()


def served(url: str, project: int, task: dict) -> str | None:
    """The model_version the backend's /predict answers with now."""
    body = {"tasks": [task], "project": f"{project}.1", "label_config": textmodel.LABEL_CONFIG}
    answer = requests.post(url + "/predict", json=body, timeout=30).json()
    return answer.get("model_version")


def settle(url: str, project: int, task: dict) -> str:
    """Wait until every triggered training ran and /predict serves the newest version; return its name."""
    wait_for(lambda: queue_idle(url), 300, what="the trainings the round's annotations triggered")
    current = versions(url, project)["current"]
    wait_for(lambda: served(url, project, task) == current, 30, what=f"/predict to serve {current}")
    return current


def gate_report(report: dict) -> dict:
    """Versions published, scored, regressed (the broken fits) and blocked (kept as candidates, not served)."""
    details = report["details"]
    regressed = [d for d in details if ((d["metadata"] or {}).get("result") or {}).get("regressed")]
    held = [d for d in details if d["candidate"]]
    return {
        "published": len(details),
        "scored": sum(1 for d in details if d["scores"]),
        "regressed": len(regressed),
        "regressed_blocked": sum(1 for d in regressed if d["candidate"]),
        "good_held": len([d for d in held if d not in regressed]),
        "served_at_end": report["current"],
        "unscored": [(d["name"], (d["metadata"] or {}).get("evaluation_error")) for d in details if not d["scores"]],
        "regressed_versions": [(d["name"], d["scores"].get("accuracy"), d["candidate"]) for d in regressed],
        # good versions the gate held: held-out noise (a few dozen tasks) beyond the tolerance
        "good_held_versions": [
            (
                d["name"],
                (d.get("gate_check") or {}).get("score"),
                (d.get("gate_check") or {}).get("served"),
                (d.get("gate_check") or {}).get("served_score"),
            )
            for d in held
            if d not in regressed
        ],
    }


def run(args: argparse.Namespace, tmp: Path) -> dict:
    ls = LabelStudioServer(find_label_studio_binary(), tmp / "label-studio")
    procs = Procs(tmp)
    backend = tmp / "text_classifier"
    shutil.copytree(EXAMPLE, backend, ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
    (backend / "regressing.py").write_text(REGRESSING_MODEL)
    gated = args.regress_round is not None
    ls.start()
    try:
        client = ls.client(ls.legacy_token)
        project = client.create_project("acceptance bench", textmodel.LABEL_CONFIG)["id"]
        data = make_texts(args.tasks, args.words, args.seed)
        truth = {text: label for text, label in data}
        client.import_tasks(project, [{"text": text} for text, _ in data])
        tasks = sorted(client.tasks(project), key=lambda t: t["id"])
        env = {
            "LSML_MODEL": "regressing:RegressingClassifier" if gated else "model:TextClassifier",
            "LABEL_STUDIO_URL": ls.url,
            "LABEL_STUDIO_API_KEY": ls.legacy_token,
            "LSML_CATCHUP_INTERVAL": "0",
            "LOG_LEVEL": "WARNING",
        }
        if gated:  # scored on the held-out fifth, the gate on, every version kept for the report
            env[setting_names.LSML_QUALITY_GATE] = f"accuracy:{args.tolerance}"
            env[setting_names.LSML_HOLDOUT_FRACTION] = str(args.holdout)
            env[setting_names.LSML_KEEP_VERSIONS] = "100000"
        url = start_server(procs, backend, None, workers=1, **env)
        client.ensure_ml_backend(project, url, title="acceptance bench")
        oracle: dict[str, dict[str, int]] = {}
        rounds = []

        for task in tasks[: args.first]:  # round 0: from scratch
            client.create_annotation(task["id"], choice(truth[task["data"]["text"]]), lead_time=5.0)
        position = args.first
        for number in range(1, args.rounds + 1):
            version = settle(url, project, tasks[-1])
            batch = tasks[position : position + args.batch]
            position += len(batch)
            if not batch:
                break
            regressing = number == args.regress_round
            if regressing:
                (backend / "REGRESS").touch()
            else:
                (backend / "REGRESS").unlink(missing_ok=True)
            started = time.monotonic()
            client.run_action(project, "retrieve_tasks_predictions", selected=[t["id"] for t in batch])
            predicted_seconds = time.monotonic() - started
            tally = oracle.setdefault(version, {"annotations": 0, "kept": 0, "changed": 0})
            accepted = 0
            for task in batch:
                pred = next(p for p in client.predictions(task=task["id"]) if p.get("model_version") == version)
                label = truth[task["data"]["text"]]
                kept = pred["result"][0]["value"]["choices"] == [label]
                result = pred["result"] if kept else choice(label)  # edited: the choice corrected
                client.create_annotation(task["id"], result, parent_prediction=pred["id"], lead_time=2.0)
                tally["annotations"] += 1
                tally["kept" if kept else "changed"] += 1
                accepted += kept
            rounds.append(
                {
                    "round": number,
                    "version": version,
                    "tasks": len(batch),
                    "accepted": accepted,
                    "regressing": regressing,
                    "retrieve_seconds": round(predicted_seconds, 2),
                }
            )
            print(f"round {number}: {version} predicted {len(batch)} tasks, oracle accepted {accepted}")
        settle(url, project, tasks[-1])
        (backend / "REGRESS").unlink(missing_ok=True)
        counted = wait_for(
            lambda: versions(url, project)["acceptance"],
            60,
            what="lsml's acceptance counts of every annotation",
            until=lambda r: all(r.get(v, {}).get("annotations") == t["annotations"] for v, t in oracle.items()),
        )
        mismatches = [
            v
            for v, t in oracle.items()
            if (counted[v]["kept"], counted[v]["changed"], counted[v]["deleted"], counted[v]["added"])
            != (t["kept"], t["changed"], 0, 0)
        ]
        return {
            "machine": machine(),
            "loadavg": loadavg(),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "rounds": rounds,
            "acceptance": counted,
            "oracle": oracle,
            "mismatches": mismatches,
            "gate": gate_report(versions(url, project)) if gated else None,
        }
    finally:
        procs.stop_all()
        ls.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--first", type=int, default=20, help="tasks labelled from scratch before v1")
    parser.add_argument("--batch", type=int, default=40, help="tasks per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--words", type=int, default=8, help="words per generated text (fewer: harder)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--regress-round", type=int, default=None, help="gate on; every fit of this round publishes a broken model"
    )
    parser.add_argument("--tolerance", type=float, default=0.05, help="the gate's accuracy tolerance")
    parser.add_argument("--holdout", type=float, default=0.2, help="LSML_HOLDOUT_FRACTION with the gate on")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lsml-acceptance-") as tmp:
        found = run(args, Path(tmp))
    print("version  annotations  kept  changed  deleted  added  accepted share")
    for version, row in sorted(found["acceptance"].items(), key=lambda kv: int(kv[0][1:])):
        print(
            f"{version:8} {row['annotations']:12} {row['kept']:5} {row['changed']:8} {row['deleted']:8}"
            f" {row['added']:6}  {row['accepted_share']}"
        )
    if args.out:
        args.out.write_text(json.dumps(found, indent=2) + "\n")
    gate = found["gate"]
    if gate:
        print(
            f"versions published {gate['published']}, scored {gate['scored']}, regressed {gate['regressed']}, "
            f"regressions blocked {gate['regressed_blocked']}, good versions held {gate['good_held']}, "
            f"served at the end {gate['served_at_end']}"
        )
    if found["mismatches"]:
        print(f"lsml's counts differ from the oracle's for {found['mismatches']}", file=sys.stderr)
        return 1
    if gate and (gate["regressed"] == 0 or gate["regressed_blocked"] != gate["regressed"]):
        print("not every regressed version was blocked (or none was made)", file=sys.stderr)
        return 1
    print("lsml's counts match the oracle's for every version")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
