# segpipe-beam: the preprocess step, and the Dataflow custom container for the same Beam code.
# Based on the Apache Beam SDK image of the pinned Beam version (pyproject.toml), so Dataflow
# workers run exactly the Beam, Python and dependencies the launcher used. The image's own
# ENTRYPOINT (/opt/apache/beam/boot) is kept: Dataflow needs it; KFP sets its own command.
# Build from the repository root: make images
FROM apache/beam_python3.11_sdk:2.77.0

ARG SEGPIPE_VERSION=dev
LABEL org.opencontainers.image.title="segpipe-beam" \
      org.opencontainers.image.version="${SEGPIPE_VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/segpipe
COPY pyproject.toml README.md ./
COPY components ./components
COPY pipelines ./pipelines
# Installs segpipe with its pinned dependencies (kfp, apache-beam[gcp] already satisfied here).
RUN python -m pip install . "kfp==2.17.3" \
    && python -c "import apache_beam, kfp, components.preprocess.pipeline"

RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin segpipe
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
WORKDIR /home/segpipe
