"""The score strategy switch: LSML_SCORE_STRATEGY in the text example, `start --score-strategy` on a real server."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from lsml.model import BuildContext, build_model
from lsml.settings import Settings
from lsml.state import make_state
from lsml.store import make_store
from lsml.training.job import run_training
from lsml.training.queue import TrainingRequest
from tests.fixtures.ports import free_port, wait_for_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLI = str(Path(sys.executable).parent / "label-studio-ml")
TEXT_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>
  </Choices>
</View>"""
ROWS = [
    ("great movie", "Positive"),
    ("lovely acting", "Positive"),
    ("awful plot", "Negative"),
    ("boring and bad", "Negative"),
    ("it was a film", "Neutral"),
    ("a movie on tuesday", "Neutral"),
]


def load_class(backend: str, name: str):
    """Import `examples/<backend>/model.py` under a unique module name (every backend has a `model.py`)."""
    spec = importlib.util.spec_from_file_location(f"lsml_example_{backend}_model", EXAMPLES / backend / "model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return getattr(module, name)


def annotated_text_tasks():
    return [
        {
            "id": i + 1,
            "data": {"text": text},
            "annotations": [
                {
                    "id": 100 + i,
                    "result": [
                        {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                    ],
                }
            ],
        }
        for i, (text, label) in enumerate(ROWS)
    ]


@pytest.mark.parametrize("strategy", ["confidence", "least_confidence", "margin", "entropy"])
def test_text_classifier_score_follows_lsml_score_strategy(tmp_path, strategy):
    cls = load_class("text_classifier", "TextClassifier")
    base = Settings.from_env(env={}, backend_dir=EXAMPLES / "text_classifier").replace(model_dir=tmp_path)
    run_training(
        cls, TrainingRequest("1", "START_TRAINING", {"annotations": annotated_text_tasks()}, TEXT_CONFIG), base
    )
    settings = Settings.from_env(env={"LSML_SCORE_STRATEGY": strategy}).replace(
        backend_dir=base.backend_dir, model_dir=tmp_path
    )
    model = build_model(
        cls, "1", TEXT_CONFIG, BuildContext(settings, make_state(settings), make_store(settings).current("1"))
    )
    out = model.predict([{"data": {"text": "great plot"}}, {"data": {"text": "a film"}}])
    for prediction in out:
        probs = prediction["result"][0]["probabilities"]
        assert set(probs) == {"Positive", "Negative", "Neutral"}
        p = np.sort(np.array(list(probs.values())))[::-1]
        expected = {
            "confidence": p[0],
            "least_confidence": 1 - (1 - p[0]) * 3 / 2,
            "margin": p[0] - p[1],
            "entropy": 1 + float((p * np.log(p)).sum()) / np.log(3),
        }[strategy]
        assert prediction["score"] == pytest.approx(expected, abs=1e-5)
        assert prediction["result"][0]["value"]["choices"] == [max(probs, key=probs.get)]


def test_text_classifier_rejects_an_unknown_strategy(tmp_path):
    cls = load_class("text_classifier", "TextClassifier")
    settings = Settings.from_env(env={"LSML_SCORE_STRATEGY": "most-fun"}, backend_dir=EXAMPLES / "text_classifier")
    with pytest.raises(ValueError, match="LSML_SCORE_STRATEGY: unknown score strategy 'most-fun'"):
        build_model(
            cls,
            "1",
            TEXT_CONFIG,
            BuildContext(settings.replace(model_dir=tmp_path), make_state(settings.replace(model_dir=tmp_path))),
        )


def test_start_score_strategy_flag_reaches_the_served_model(tmp_path):
    """`label-studio-ml start --score-strategy entropy` on real gunicorn: /predict scores are 1 - entropy."""
    make_dataset = importlib.util.module_from_spec(
        spec := importlib.util.spec_from_file_location(
            "lsml_example_make_dataset", EXAMPLES / "image_classifier" / "make_dataset.py"
        )
    )
    spec.loader.exec_module(make_dataset)
    tasks = make_dataset.make_dataset(tmp_path / "digits", n=60, url_prefix="")
    truth = json.loads((tmp_path / "digits" / "labels.json").read_text())
    config = (EXAMPLES / "image_classifier" / "label_config.xml").read_text()
    annotated = [
        {
            "id": i + 1,
            "data": t["data"],
            "annotations": [
                {
                    "id": i + 1,
                    "result": [
                        {
                            "from_name": "digit",
                            "to_name": "image",
                            "type": "choices",
                            "value": {"choices": [truth[Path(t["data"]["image"]).name]]},
                        }
                    ],
                }
            ],
        }
        for i, t in enumerate(tasks[:50])
    ]
    backend = tmp_path / "backend"
    shutil.copytree(
        EXAMPLES / "image_classifier", backend, ignore=shutil.ignore_patterns("data", "logs", "__pycache__")
    )
    settings = Settings.from_env(env={}, backend_dir=backend).replace(
        model_dir=tmp_path / "models", local_files_roots=[tmp_path / "digits"]
    )
    cls = load_class("image_classifier", "ImageClassifier")
    assert run_training(cls, TrainingRequest("7", "START_TRAINING", {"annotations": annotated}, config), settings)[
        "published"
    ]

    bad = subprocess.run(
        [CLI, "start", str(backend), "--score-strategy", "bogus"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "invalid choice: 'bogus'" in bad.stderr

    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LSML_SCORE_STRATEGY", "PROMETHEUS_MULTIPROC_DIR")
    }
    env["MODEL_DIR"] = str(tmp_path / "models")
    env["LSML_LOCAL_FILES_ROOTS"] = str(tmp_path / "digits")  # the tasks name local PNGs
    proc = subprocess.Popen(
        [
            CLI,
            "start",
            str(backend),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--embedded",
            "--score-strategy",
            "entropy",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, timeout=60)
        body = {
            "tasks": [{"id": 100 + i, "data": t["data"]} for i, t in enumerate(tasks[50:])],
            "project": "7.1700000000",
            "label_config": config,
        }
        response = requests.post(f"http://127.0.0.1:{port}/predict", json=body, timeout=60)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert len(results) == 10
        for prediction in results:
            p = np.array(list(prediction["result"][0]["probabilities"].values()))
            p = p[p > 0] / p.sum()
            assert prediction["score"] == pytest.approx(1 + float((p * np.log(p)).sum()) / np.log(10), abs=1e-4)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
