# syntax=docker/dockerfile:1.7
# One image for every Podium service; the Kubernetes manifests pick the process
# (`python -m services.<name>`). Why one image, and how the base is pinned:
# docs/operations.md, "Images".
#
#   docker build -t podium:dev .
#   docker run --rm --read-only --tmpfs /tmp --tmpfs /var/lib/podium podium:dev python -m services.room
#
# Exact patch release of CPython and Debian. Pin the digest too where a registry
# can be reached: docker buildx imagetools inspect python:3.11.14-slim-bookworm
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ONLY_BINARY=:all: \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app

# Code generators live in the build stage only (grpcio-tools, mypy-protobuf).
RUN python -m venv /opt/codegen \
 && /opt/codegen/bin/pip install grpcio-tools==1.85.1 mypy-protobuf==5.1.0

# Runtime dependencies first, from pyproject.toml alone, so a source change
# does not reinstall them: [project].dependencies only, never the dev or analyst
# extras (no embedded broker or PostgreSQL, no pyarrow or matplotlib, no test tools).
# Every dependency ships a wheel (PIP_ONLY_BINARY), so no compiler is needed even here.
COPY pyproject.toml README.md ./
RUN python -m venv /opt/podium \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/podium/bin/pip install -r /tmp/requirements.txt

# Generated protobuf code comes from protos/ here, never from the work tree
# (.dockerignore leaves gen/ out of the context).
COPY protos/ protos/
COPY libs/ libs/
RUN PATH=/opt/codegen/bin:$PATH /opt/codegen/bin/python -m libs.contracts.codegen

COPY services/ services/
COPY cli/ cli/
RUN python -m compileall -q libs services cli gen

# -------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="podium" \
      org.opencontainers.image.description="Podium services: room, presence, moderation, media-relay, replay" \
      org.opencontainers.image.source="https://github.com/podium/podium" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed uid/gid so securityContext.runAsUser and fsGroup can name it.
RUN groupadd --system --gid 10001 podium \
 && useradd --system --uid 10001 --gid podium --home-dir /var/lib/podium --no-create-home \
      --shell /usr/sbin/nologin podium

# Root owns the virtualenv; Tilt's dev build passes VENV_OWNER=podium so live_update
# can re-run the install when pyproject.toml changes.
ARG VENV_OWNER=root
COPY --from=build --chown=${VENV_OWNER} /opt/podium /opt/podium
# Source is owned by the app user so Tilt's live_update (dev only) can sync into it;
# in production the root filesystem is mounted read-only.
COPY --from=build --chown=podium:podium /app/libs /app/libs
COPY --from=build --chown=podium:podium /app/services /app/services
COPY --from=build --chown=podium:podium /app/cli /app/cli
COPY --from=build --chown=podium:podium /app/gen /app/gen
COPY --from=build --chown=podium:podium /app/pyproject.toml /app/pyproject.toml

# The only writable paths are /tmp and /var/lib/podium (faust's data directory,
# replay's recordings); Kubernetes mounts emptyDir volumes or a PVC there.
ENV PATH=/opt/podium/bin:$PATH \
    PYTHONPATH=/app:/app/gen \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/podium \
    APP_DATADIR=/var/lib/podium/faust \
    PODIUM_REPLAY_BLOB_DIR=/var/lib/podium/recordings
WORKDIR /var/lib/podium
USER 10001:10001
# gRPC: room 50051, presence 50052, moderation 50053, media-relay 50054, replay 50055,
# analytics 50056 (health only), webhooks 50057; Prometheus metrics on 9464 (PODIUM_METRICS_PORT).
EXPOSE 50051 50052 50053 50054 50055 50056 50057 50058 8080 9464

# No default service: each Deployment names its command (`python -m services.room`, …).
# `python -m cli` is the `podium` command (`python -m cli log reseed --service room`).
CMD ["python", "-m", "cli", "--help"]
