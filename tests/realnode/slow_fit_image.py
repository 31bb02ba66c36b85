"""A backend image whose fit is slow and says when it starts and ends: the text_classifier image plus one
model file, built in the test session with hack/images' engine and imported into the real node.

Why an image of its own: the product has no test hook; a test needs a fit long enough to kill its pod in
the middle of it, and a log line that proves where it was. The model is the example's `TextClassifier`
with a pause before a job's first fit, selected with `LSML_MODEL` (the backend's `_wsgi.py` is unchanged).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .cluster import import_into_node

# Longer than any test takes to delete the pod after the fit starts (several kubectl calls on a starved machine):
# the first run is always killed mid-fit, so nothing waits this out.
FIT_SECONDS = 600
MODEL_PY = f'''
import sys
import time

from model import TextClassifier


class SlowFitTextClassifier(TextClassifier):
    """The example's classifier, {FIT_SECONDS} s slower on a job's first run (long enough to delete its pod
    meanwhile); a run of the same job again (after its worker was killed) is not slowed down."""

    def fit(self, event, data, **kwargs):
        job = kwargs.get("job_id")
        again = bool(self.get(f"slow-fit-{{job}}"))  # per-project state: in Redis, shared by the pods
        print(f"slow fit: started job {{job}}" + (" again" if again else ""), file=sys.stderr, flush=True)
        if not again:
            self.set(f"slow-fit-{{job}}", True)
            time.sleep({FIT_SECONDS})
        result = super().fit(event, data, **kwargs)
        print(f"slow fit: finished job {{job}}", file=sys.stderr, flush=True)
        return result
'''
DOCKERFILE = """ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY --chown=10001:10001 slow_model.py /app/slow_model.py
ENV LSML_MODEL=slow_model:SlowFitTextClassifier
"""


def build_and_import(images: dict[str, str], containerd_socket: Path) -> str:
    """The image's reference, built (once per content) on the images' engine and imported into the node."""
    docker = shutil.which("docker")
    if docker is None or "docker_host" not in images:
        pytest.fail(
            "the slow-fit image needs the docker CLI and hack/images/build's engine (docker_host=)", pytrace=False
        )
    base = images["text_classifier"]
    digest = hashlib.sha256((base + DOCKERFILE + MODEL_PY).encode()).hexdigest()[:16]
    ref = f"lsml.local/text-classifier-slowfit:{digest}"
    env = {**os.environ, "DOCKER_HOST": images["docker_host"]}
    if subprocess.run([docker, "image", "inspect", ref], env=env, capture_output=True).returncode != 0:
        with tempfile.TemporaryDirectory(prefix="lsml-slowfit-") as context:
            Path(context, "Dockerfile").write_text(DOCKERFILE)
            Path(context, "slow_model.py").write_text(MODEL_PY)
            built = subprocess.run(
                [docker, "build", "--network", "none", "--build-arg", f"BASE_IMAGE={base}", "--tag", ref, context],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
        if built.returncode != 0:
            pytest.fail(f"docker build of {ref} failed:\n{built.stdout[-3000:]}{built.stderr[-3000:]}", pytrace=False)
    import_into_node(docker, env, ref, containerd_socket)
    return ref
