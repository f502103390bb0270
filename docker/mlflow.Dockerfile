# segpipe-mlflow: an MLflow tracking server for teams without one (see docker/mlflow.yaml):
# the MLflow version segpipe pins with its basic-auth app (the `auth` extra: Flask-WTF), a
# PostgreSQL driver and the GCS client for the artifact root.
# Build from the repository root: make mlflow-image
FROM python:3.11.13-slim-bookworm

ARG SEGPIPE_VERSION=dev
LABEL org.opencontainers.image.title="segpipe-mlflow" \
      org.opencontainers.image.version="${SEGPIPE_VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m pip install "mlflow[auth]==3.17.2" "Flask-WTF==1.3.0" "psycopg[binary]==3.3.9" \
        "google-cloud-storage==3.17.1"

RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin mlflow
USER 10001:10001
WORKDIR /home/mlflow
EXPOSE 5000
CMD ["mlflow", "server", "--app-name", "basic-auth", "--host", "0.0.0.0", "--port", "5000"]
