# segpipe-trainer: the train and evaluate steps, on the TensorFlow GPU image of the pinned
# TensorFlow version (pyproject.toml): CUDA and cuDNN as TensorFlow was built against.
# Build from the repository root: make images
FROM tensorflow/tensorflow:2.21.0-gpu

ARG SEGPIPE_VERSION=dev
LABEL org.opencontainers.image.title="segpipe-trainer" \
      org.opencontainers.image.version="${SEGPIPE_VERSION}"

# PIP_BREAK_SYSTEM_PACKAGES: the base's Python is the system one; this image is its only user.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    TF_CPP_MIN_LOG_LEVEL=1

# segpipe requires Python 3.11: fail here, clearly, if the base image ever moves off it.
RUN python3 -c "import sys; v = sys.version_info[:2]; \
assert v == (3, 11), f'segpipe needs Python 3.11, tensorflow/tensorflow:2.21.0-gpu has {v}'"

WORKDIR /opt/segpipe
COPY pyproject.toml README.md ./
COPY components ./components
COPY pipelines ./pipelines
# tensorflow==2.21.0 is already satisfied by the base, so its GPU build is kept.
RUN python3 -m pip install . "kfp==2.17.3" \
    && python3 -c "import tensorflow, kfp, mlflow, components.train.trainer"

RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin segpipe
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
WORKDIR /home/segpipe
