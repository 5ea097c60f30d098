# defi-scoring for the production mode of docs/production.md: one image, one process per container
# (compose.yaml runs the Dagster webserver, daemon and code server, the MLflow server and the API from it).
# Build: docker build -t defi-scoring .

FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY defi_scoring ./defi_scoring
RUN pip install --no-cache-dir build==1.* && python -m build --wheel --outdir /dist

FROM python:3.11-slim
# libgomp1: the OpenMP runtime that LightGBM and XGBoost load; curl: container health checks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=wheel /dist /tmp/dist
RUN wheel="$(ls /tmp/dist/defi_scoring-*.whl)" \
    && pip install --no-cache-dir "${wheel}[postgres]" \
    && rm -rf /tmp/dist
RUN useradd --create-home --uid 10001 scoring \
    && mkdir -p /opt/dagster/home /var/lib/defi-scoring \
    && chown -R scoring /opt/dagster /var/lib/defi-scoring
COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/workspace.yaml
ENV DAGSTER_HOME=/opt/dagster/home \
    DEFI_SCORING_HOME=/var/lib/defi-scoring \
    PYTHONUNBUFFERED=1
USER scoring
WORKDIR /var/lib/defi-scoring
EXPOSE 3000 4000 5000 8000
CMD ["defi-scoring", "serve", "--host", "0.0.0.0", "--port", "8000"]
