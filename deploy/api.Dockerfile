# The planning API (CPU). Build from the repository root:
#   docker build -f deploy/api.Dockerfile -t patchdrop-api .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# torch from the CPU index first: the default PyPI wheel would pull several GB of CUDA libraries
# into an image that never sees a GPU.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY models ./models
COPY service ./service
COPY worker ./worker
RUN pip install .

# Non-root; /data holds the embedded SQLite store when no REDIS_URL is set, /checkpoints extra bundles.
RUN useradd --create-home --uid 10001 patchdrop && mkdir -p /data /checkpoints && chown patchdrop /data
USER patchdrop
ENV PATCHDROP_DB_PATH=/data/patchdrop.sqlite3
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["patchdrop", "serve", "--host", "0.0.0.0", "--port", "8000"]
