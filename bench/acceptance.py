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

    .venv/bin/python bench/acceptance.py                 # ~1 min: 300 tasks, 20 first, 6 rounds of 40
    .venv/bin/python bench/acceptance.py --out bench/results/acceptance.json
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
from tests.runtime.rq_procs import Procs, start_server  # noqa: E402

EXAMPLE = REPO / "examples" / "text_classifier"


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


def run(args: argparse.Namespace, tmp: Path) -> dict:
    ls = LabelStudioServer(find_label_studio_binary(), tmp / "label-studio")
    procs = Procs(tmp)
    backend = tmp / "text_classifier"
    shutil.copytree(EXAMPLE, backend, ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
    ls.start()
    try:
        client = ls.client(ls.legacy_token)
        project = client.create_project("acceptance bench", textmodel.LABEL_CONFIG)["id"]
        data = make_texts(args.tasks, args.words, args.seed)
        truth = {text: label for text, label in data}
        client.import_tasks(project, [{"text": text} for text, _ in data])
        tasks = sorted(client.tasks(project), key=lambda t: t["id"])
        env = {
            "LSML_MODEL": "model:TextClassifier",
            "LABEL_STUDIO_URL": ls.url,
            "LABEL_STUDIO_API_KEY": ls.legacy_token,
            "LSML_CATCHUP_INTERVAL": "0",
            "LOG_LEVEL": "WARNING",
        }
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
            started = time.monotonic()
            client.run_action(project, "retrieve_tasks_predictions", selected=[t["id"] for t in batch])
            predicted_seconds = time.monotonic() - started
            tally = oracle.setdefault(version, {"annotations": 0, "kept": 0, "changed": 0})
            for task in batch:
                pred = next(p for p in client.predictions(task=task["id"]) if p.get("model_version") == version)
                label = truth[task["data"]["text"]]
                kept = pred["result"][0]["value"]["choices"] == [label]
                result = pred["result"] if kept else choice(label)  # edited: the choice corrected
                client.create_annotation(task["id"], result, parent_prediction=pred["id"], lead_time=2.0)
                tally["annotations"] += 1
                tally["kept" if kept else "changed"] += 1
            rounds.append(
                {
                    "round": number,
                    "version": version,
                    "tasks": len(batch),
                    "accepted": tally["kept"],
                    "retrieve_seconds": round(predicted_seconds, 2),
                }
            )
            print(f"round {number}: {version} predicted {len(batch)} tasks, oracle accepted {tally['kept']}")
        settle(url, project, tasks[-1])
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
    if found["mismatches"]:
        print(f"lsml's counts differ from the oracle's for {found['mismatches']}", file=sys.stderr)
        return 1
    print("lsml's counts match the oracle's for every version")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
