# segpipe-runtime: the publish step (MLflow registry, export to local or gs://), on a slim
# Python of the project's version, pinned by tag.
# Build from the repository root: make images
FROM python:3.11.13-slim-bookworm

ARG SEGPIPE_VERSION=dev
LABEL org.opencontainers.image.title="segpipe-runtime" \
      org.opencontainers.image.version="${SEGPIPE_VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/segpipe
COPY pyproject.toml README.md ./
COPY components ./components
COPY pipelines ./pipelines
# The package has one dependency list, so this image carries TensorFlow and Beam too; the base
# stays slim, the layer does not (splitting the dependencies into extras would fix that).
RUN python -m pip install . "kfp==2.17.3" \
    && python -c "import kfp, mlflow, components.publish.publisher"

RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin segpipe
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
WORKDIR /home/segpipe
