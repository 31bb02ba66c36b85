# syntax=docker/dockerfile:1
# lsml images, built from the repository root.
#   docker build -t lsml .                                  runtime: gunicorn serving the backend in /app
#   docker build --target operator -t lsml-operator .       control plane: the kopf operator
# Build stages install into a virtualenv under /opt/lsml; final stages copy only
# that venv onto a clean base, so no build tools or caches end up in an image.
# CI lints this file with hadolint and replays its install + CMD in a temp venv
# (tests/runtime/test_packaging.py), since no Docker engine runs there.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
# The build stages' base: the same python image by default. With no registry or package index
# reachable, hack/images/build passes a local base as PYTHON_IMAGE and, as BUILD_IMAGE, that base
# plus a wheelhouse and PIP_NO_INDEX/PIP_FIND_LINKS; final stages never see either.
ARG BUILD_IMAGE=${PYTHON_IMAGE}

# ---- build: the runtime venv -------------------------------------------------
FROM ${BUILD_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runtime ./runtime
COPY operator ./operator
RUN python -m venv /opt/lsml \
 && /opt/lsml/bin/pip install --no-cache-dir .

# ---- build: the operator venv ------------------------------------------------
FROM build AS operator-build
RUN /opt/lsml/bin/pip install --no-cache-dir ".[operator]"

# ---- operator image (--target operator) --------------------------------------
FROM ${PYTHON_IMAGE} AS operator
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin lsml
COPY --from=operator-build /opt/lsml /opt/lsml
ENV PATH=/opt/lsml/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001
ENTRYPOINT ["lsml-operator"]

# ---- runtime image (default target) ------------------------------------------
# A backend directory (made by `label-studio-ml init`, with _wsgi.py) is copied or
# mounted at /app; trained versions live in /data/models (a volume shared with the worker).
# The same image runs the worker: `label-studio-ml worker /app` (see the compose file).
FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin lsml \
 && mkdir -p /app /data/models \
 && chown -R 10001:10001 /app /data
COPY --from=build /opt/lsml /opt/lsml
ENV PATH=/opt/lsml/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LSML_BACKEND_DIR=/app \
    MODEL_DIR=/data/models \
    PORT=9090 \
    THREADS=8
WORKDIR /app
USER 10001
EXPOSE 9090
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '9090'), timeout=2)"]
# The one serving command of every lsml deployment (lsml.server.gunicorn_conf): no flags, so the
# knobs are environment: PORT, THREADS (above), WORKERS, HOST, LSML_CLIENT_TIMEOUT, LOG_LEVEL.
# WORKERS unset: 2 with REDIS_URL (trainings run in the RQ worker), else 1, since each worker would
# run its own embedded training queue (lsml.settings.ServingSettings). No control socket: gunicorn 27
# would otherwise try to create it in the read-only $HOME.
CMD ["gunicorn", "--config", "python:lsml.server.gunicorn_conf", "_wsgi:app"]
