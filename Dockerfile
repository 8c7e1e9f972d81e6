# One image for every ChatWarden service; the container runs `warden <service>`
# (see docker-compose.yml). Build: docker build -t chatwarden .
# For a CPU-only image (no CUDA wheels), build with
#   --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
FROM python:3.11-slim

ARG PIP_EXTRA_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL}

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so that a code change reuses this layer.
COPY pyproject.toml README.md ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', *deps])"

# Only the packages: never the local stack's data (.stack), virtualenvs or tests.
COPY core/ core/
COPY warden/ warden/
COPY schemas/ schemas/
COPY toxicity/ toxicity/
COPY ingest/ ingest/
COPY scorers/ scorers/
COPY actioners/ actioners/
COPY explainers/ explainers/
COPY retrain/ retrain/
COPY deploy/ deploy/
COPY benchmarks/ benchmarks/
COPY devkit/ devkit/
# The shipped model (booster, calibrator, card); the int8 encoder is built on first use.
COPY models/ models/
# Editable, so the code runs from /app beside models/ (the shipped model is found there).
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --home-dir /app warden

USER warden
# Metrics: ingest 9101, scorer 9102, actioner 9103 (WARDEN_METRICS__*); webhook API 8080.
EXPOSE 9101 9102 9103 8080
ENTRYPOINT ["warden"]
CMD ["--help"]
