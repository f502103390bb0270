# segpipe-runtime: the publish step (MLflow registry, export to a local path or gs://): the core
# dependencies only, no TensorFlow and no Beam.
#
# Default base: the official slim Python image of the project's Python, pinned by tag; Debian
# bookworm, like the local base the container tests build.
#
# Build context: the image's wheelhouse (`make wheelhouse`), not the repository: the build installs
# the exact versions of docker/locks/runtime.txt plus segpipe's wheel with no network at all.
# Build: make images  (BASE_IMAGE=... for another base with Python 3.11, e.g. a local one)
ARG BASE_IMAGE=python:3.11.13-slim-bookworm

FROM ${BASE_IMAGE} AS build
COPY deps /tmp/wheelhouse
# A venv keeps the lock's packages apart from the base's (and PEP 668 bases forbid system installs).
RUN sh /tmp/wheelhouse/install-venv.sh /opt/segpipe/venv

FROM ${BASE_IMAGE}
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin segpipe
COPY --from=build /opt/segpipe/venv /opt/segpipe/venv
ARG SEGPIPE_VERSION=dev
LABEL org.opencontainers.image.title="segpipe-runtime" \
      org.opencontainers.image.version="${SEGPIPE_VERSION}"
# SEGPIPE_IMAGE: the steps tag their MLflow runs with it (which image ran the step).
# GIT_PYTHON_REFRESH: no git here; MLflow's source-version lookup then skips it without warnings.
ENV PATH=/opt/segpipe/venv/bin:${PATH} \
    VIRTUAL_ENV=/opt/segpipe/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    GIT_PYTHON_REFRESH=quiet \
    SEGPIPE_IMAGE=segpipe-runtime:${SEGPIPE_VERSION}
COPY segpipe /tmp/segpipe
RUN pip install --quiet --no-index --no-deps /tmp/segpipe/segpipe-*.whl \
    && pip check \
    && python -c "import kfp, mlflow, components.publish.publisher" \
    && rm -rf /tmp/segpipe
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
WORKDIR /home/segpipe
