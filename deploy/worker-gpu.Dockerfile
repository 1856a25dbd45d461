# A Celery worker on one NVIDIA GPU. Run one container (one solo-pool process) per GPU:
# CUDA does not survive the fork of Celery's prefork pool, and one process per GPU keeps
# each model copy on its own device.
#   docker build -f deploy/worker-gpu.Dockerfile -t patchdrop-worker-gpu .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# The CUDA build of torch: its wheels bring their own CUDA runtime (nvidia-* packages), so the
# host needs only the NVIDIA driver and the container toolkit, not a CUDA base image.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0
COPY pyproject.toml README.md ./
COPY models ./models
COPY service ./service
COPY worker ./worker
RUN pip install .

RUN useradd --create-home --uid 10001 patchdrop && mkdir -p /checkpoints
USER patchdrop
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
HEALTHCHECK --interval=30s --timeout=15s --start-period=180s --retries=3 \
  CMD ["sh", "-c", "celery -A worker.app inspect ping --timeout 10 -d patchdrop-cuda0@$HOSTNAME"]
# cuda:0 is the one GPU the container is given (device_ids in docker-compose.yml).
CMD ["patchdrop", "worker", "--device", "cuda:0"]
