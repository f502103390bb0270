# segpipe-trainer: the train and evaluate steps.
#
# Default base: the TensorFlow GPU image of the pinned TensorFlow version, which carries the CUDA
# and cuDNN libraries that build of TensorFlow was made for. The venv sees the base's packages
# (--system-site-packages), so on that base pip keeps the base's tensorflow==2.21.0, the lock's
# exact version, with its GPU libraries, and installs only what the base lacks or has at another
# version (the venv's copy wins). On a plain base (Debian's python3, python:*-slim) nothing is
# shared and everything comes from the lock: TensorFlow's wheel then runs on the CPU, which is
# what the CI build uses.
#
# Build context: the image's wheelhouse (`make wheelhouse`), not the repository: the build installs
# the exact versions of docker/locks/trainer.txt plus segpipe's wheel with no network at all.
# Build: make images  (BASE_IMAGE=... for another base with Python 3.11, e.g. a local one)
ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu

FROM ${BASE_IMAGE} AS build
COPY deps /tmp/wheelhouse
# A venv keeps the lock's packages apart from the base's (and PEP 668 bases forbid system installs).
RUN sh /tmp/wheelhouse/install-venv.sh /opt/segpipe/venv --system-site-packages

FROM ${BASE_IMAGE}
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin segpipe
COPY --from=build /opt/segpipe/venv /opt/segpipe/venv
ARG SEGPIPE_VERSION=dev
LABEL org.opencontainers.image.title="segpipe-trainer" \
      org.opencontainers.image.version="${SEGPIPE_VERSION}"
# SEGPIPE_IMAGE: the steps tag their MLflow runs with it (which image ran the step).
# GIT_PYTHON_REFRESH: no git here; MLflow's source-version lookup then skips it without warnings.
ENV PATH=/opt/segpipe/venv/bin:${PATH} \
    VIRTUAL_ENV=/opt/segpipe/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    GIT_PYTHON_REFRESH=quiet \
    TF_CPP_MIN_LOG_LEVEL=1 \
    SEGPIPE_IMAGE=segpipe-trainer:${SEGPIPE_VERSION}
COPY segpipe /tmp/segpipe
RUN pip install --quiet --no-index --no-deps /tmp/segpipe/segpipe-*.whl \
    && pip check \
    && python -c "import tensorflow, kfp, mlflow, components.train.trainer" \
    && rm -rf /tmp/segpipe
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
WORKDIR /home/segpipe
