# segpipe-beam: the preprocess step, and the Dataflow custom container for the same Beam code.
#
# Default base: the Apache Beam SDK image of the pinned Beam version. Dataflow starts workers
# through its /opt/apache/beam/boot ENTRYPOINT, which this image keeps. RUN_PYTHON_SDK_IN_DEFAULT_
# ENVIRONMENT=1 makes boot run the SDK harness with the first `python` on PATH, our venv, instead
# of a fresh venv layered over the base's system site-packages (which would not see ours).
# KFP replaces the entrypoint with the component's command (Kubernetes `command`; segpipe's
# DockerRunner passes an empty entrypoint), so the same image serves both.
#
# Build context: the image's wheelhouse (`make wheelhouse`), not the repository: the build installs
# the exact versions of docker/locks/beam.txt plus segpipe's wheel with no network at all.
# Build: make images  (BASE_IMAGE=... for another base with Python 3.11, e.g. a local one)
ARG BASE_IMAGE=apache/beam_python3.11_sdk:2.77.0

FROM ${BASE_IMAGE} AS build
COPY deps /tmp/wheelhouse
# A venv keeps the lock's packages apart from the base's (and PEP 668 bases forbid system installs).
RUN sh /tmp/wheelhouse/install-venv.sh /opt/segpipe/venv

FROM ${BASE_IMAGE}
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin segpipe
COPY --from=build /opt/segpipe/venv /opt/segpipe/venv
ARG SEGPIPE_VERSION=dev
LABEL org.opencontainers.image.title="segpipe-beam" \
      org.opencontainers.image.version="${SEGPIPE_VERSION}"
# SEGPIPE_IMAGE: the steps tag their MLflow runs with it (which image ran the step).
# GIT_PYTHON_REFRESH: no git here; MLflow's source-version lookup then skips it without warnings.
ENV PATH=/opt/segpipe/venv/bin:${PATH} \
    VIRTUAL_ENV=/opt/segpipe/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    GIT_PYTHON_REFRESH=quiet \
    RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1 \
    SEGPIPE_IMAGE=segpipe-beam:${SEGPIPE_VERSION}
COPY segpipe /tmp/segpipe
RUN pip install --quiet --no-index --no-deps /tmp/segpipe/segpipe-*.whl \
    && pip check \
    && python -c "import apache_beam, kfp, mlflow, components.preprocess.pipeline" \
    && rm -rf /tmp/segpipe
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
WORKDIR /home/segpipe
