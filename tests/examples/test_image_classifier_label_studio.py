"""The image example with a real Label Studio: local-files PNGs, training from its API, predictions, `sample`.

The whole active-learning loop once: make_dataset.py writes PNGs into Label
Studio's local-files root, the tasks are imported, a person's annotations
are made through the API, START_TRAINING fetches them (images downloaded
with the token through the SDK's media cache), the model's predictions are
stored in Label Studio, and `label-studio-ml sample` ranks them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsml.model import BuildContext, build_model
from lsml.settings import Settings
from lsml.state import make_state
from lsml.store import make_store
from lsml.training.job import run_training
from lsml.training.queue import TrainingRequest

pytestmark = pytest.mark.labelstudio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "image_classifier"
CONFIG = (EXAMPLE / "label_config.xml").read_text()
N_IMAGES, N_ANNOTATED = 60, 40


def load(name: str, filename: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_image_example_learns_from_label_studio_and_its_predictions_drive_sample(
    label_studio, ls_project, ls_client, tmp_path
):
    make_dataset = load("lsml_example_image_make_dataset_ls", "make_dataset.py")
    model_cls = load("lsml_example_image_model_ls", "model.py").ImageClassifier
    folder = f"digits-{tmp_path.name}"
    make_dataset.make_dataset(
        label_studio.local_files_root / folder, n=N_IMAGES, url_prefix=f"/data/local-files/?d={folder}/"
    )
    truth = json.loads((label_studio.local_files_root / folder / "labels.json").read_text())
    project = ls_project(CONFIG)
    # Label Studio serves /data/local-files/ only under a Local files storage of a project the user can see.
    ls_client.post_json(
        "/api/storages/localfiles/",
        {
            "project": project["id"],
            "title": "digits",
            "path": str(label_studio.local_files_root / folder),
            "use_blob_urls": True,
            "regex_filter": r".*\.png",
        },
    )
    ls_client.import_tasks(
        project["id"], json.loads((label_studio.local_files_root / folder / "tasks.json").read_text())
    )
    tasks = list(ls_client.iter_tasks(project["id"], 100))
    assert len(tasks) == N_IMAGES and tasks[0]["data"]["image"].startswith("/data/local-files/")

    def digit(task):
        return truth[task["data"]["image"].rsplit("/", 1)[-1]]

    for task in tasks[:N_ANNOTATED]:
        ls_client.create_annotation(
            task["id"],
            [{"from_name": "digit", "to_name": "image", "type": "choices", "value": {"choices": [digit(task)]}}],
        )

    settings = Settings.from_env(env={}, backend_dir=EXAMPLE).replace(
        model_dir=tmp_path / "models",
        label_studio_url=label_studio.url,
        label_studio_api_key=label_studio.personal_access_token(),
        score_strategy="margin",
    )
    key = str(project["id"])
    trained = run_training(
        model_cls, TrainingRequest(key, "START_TRAINING", {"project": {"id": project["id"]}}, CONFIG), settings
    )
    assert trained["published"] and trained["result"]["examples"] == N_ANNOTATED  # fetched via the API
    media = list((tmp_path / "models" / ".lsml" / "media").iterdir())
    assert len(media) >= N_ANNOTATED  # images came through Label Studio into the media cache

    model = build_model(
        model_cls, key, CONFIG, BuildContext(settings, make_state(settings), make_store(settings).current(key))
    )
    unlabelled = tasks[N_ANNOTATED:]
    predictions = model.predict(unlabelled)
    correct = sum(
        p["result"][0]["value"]["choices"][0] == digit(t) for p, t in zip(predictions, unlabelled, strict=True)
    )
    assert correct / len(unlabelled) > 0.5  # 40 labels, 10 classes: far above chance (0.1)
    for task, prediction in zip(unlabelled, predictions, strict=True):
        ls_client.post_json(
            "/api/predictions/",
            {
                "task": task["id"],
                "result": prediction["result"],
                "score": prediction["score"],
                "model_version": model.model_version,
            },
        )

    env = {k: v for k, v in os.environ.items() if k != "LABEL_STUDIO_URL"}
    env["LABEL_STUDIO_API_KEY"] = label_studio.legacy_token
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lsml.cli.main",
            "sample",
            "--ls-url",
            label_studio.url,
            "--project",
            key,
            "--strategy",
            "margin",
            "--k",
            "5",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["total_tasks"], out["labelled"], out["scored"]) == (N_IMAGES, N_ANNOTATED, N_IMAGES - N_ANNOTATED)
    assert all(c["source"] == "probabilities" for c in out["selected"])
    # The stored margin scores and the CLI's margin ranking agree: lowest score = first in the batch.
    by_score = sorted(zip(predictions, unlabelled, strict=True), key=lambda pt: (pt[0]["score"], pt[1]["id"]))
    assert out["task_ids"][0] == by_score[0][1]["id"]
    assert [c["informativeness"] for c in out["selected"]] == pytest.approx(
        [1 - p["score"] for p, _ in by_score[:5]], abs=1e-4
    )
