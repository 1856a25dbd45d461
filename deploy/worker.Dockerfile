# A Celery worker (CPU): one solo-pool process that loads the model bundles once, at start-up.
#   docker build -f deploy/worker.Dockerfile -t patchdrop-worker .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# CPU wheel: see api.Dockerfile.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY models ./models
COPY service ./service
COPY worker ./worker
RUN pip install .

RUN useradd --create-home --uid 10001 patchdrop && mkdir -p /checkpoints
USER patchdrop
# The worker answers a broadcast ping once it has loaded its models and consumes the queue.
HEALTHCHECK --interval=30s --timeout=15s --start-period=120s --retries=3 \
  CMD ["sh", "-c", "celery -A worker.app inspect ping --timeout 10 -d patchdrop-cpu@$HOSTNAME"]
CMD ["patchdrop", "worker", "--device", "cpu"]
