# One image for every ChatWarden service: a container runs `warden <service>`
# (docker-compose.yml, deploy/k8s/). `docker compose build` builds it (as the `init` service);
# by hand: docker build -t chatwarden:latest .
#
# CPU-only by default: torch comes from the PyTorch CPU index, so no CUDA libraries are
# installed (the int8 encoder runs on ONNX Runtime; torch exports it once, and runs the fp16
# encoder on a GPU). The GPU variant, for the scorer (docker compose --profile gpu builds it):
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 \
#     -t chatwarden:latest-gpu .
#
# The container runs as uid 10001 with a read-only root file system in mind: the code in /app
# is root's, nothing writes to a home directory, and every path a service writes is a setting
# pointing under /var/lib/chatwarden (state) or /var/cache/chatwarden (the int8 encoders), both
# owned by uid 10001, so a named volume mounted there starts out writable.
# tests/integration/test_image_permissions.py runs the services as that uid with these paths.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so that a code change reuses this layer. torch
# first, from TORCH_INDEX_URL: the rest then finds it installed and pulls no CUDA wheels.
COPY pyproject.toml README.md ./
RUN python -c "import os, re, subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
torch = [d for d in deps if re.match(r'torch(?![\w.-])', d)]; \
pip = [sys.executable, '-m', 'pip', 'install']; \
subprocess.check_call([*pip, '--index-url', os.environ['TORCH_INDEX_URL'], *torch]); \
subprocess.check_call([*pip, *deps])"

# The packages and the shipped model (.dockerignore keeps out local state, tests, secrets).
COPY . .
# Editable, so the code runs from /app beside models/ (the shipped model is found there).
RUN pip install --no-deps -e . \
    && groupadd --system --gid 10001 warden \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin warden \
    && mkdir -p /var/lib/chatwarden /var/cache/chatwarden \
    && chown 10001:10001 /var/lib/chatwarden /var/cache/chatwarden

# Writable paths (settings; mount volumes here). HOME is not writable: whatever a library would
# keep there has a place of its own (Hugging Face, matplotlib), or it is a bug the permission
# test catches.
ENV WARDEN_STACK__DIR=/var/lib/chatwarden \
    WARDEN_STACK__CACHE_DIR=/var/cache/chatwarden \
    WARDEN_METRICS__HOST=0.0.0.0 \
    HOME=/nonexistent \
    HF_HOME=/var/cache/chatwarden/huggingface \
    HF_HUB_OFFLINE=1 \
    MPLCONFIGDIR=/tmp/matplotlib

USER 10001:10001
# Metrics: ingest 9101, scorer 9102, actioner 9103, explainer 9104, review 9105, drift 9106,
# images 9107 (WARDEN_METRICS__*_PORT); webhook API 8080, Slack events 3000, review web 8090.
EXPOSE 9101 9102 9103 9104 9105 9106 9107 8080 3000 8090
ENTRYPOINT ["warden"]
CMD ["--help"]
