# fakeguard production image: slim Python, non-root, configured only by environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FAKEGUARD_DATA_DIR=/var/lib/fakeguard \
    FAKEGUARD_MODELS_DIR=/var/lib/fakeguard/models

WORKDIR /app
COPY pyproject.toml README.md ./
COPY detector ./detector
COPY store ./store
COPY api ./api
COPY training ./training
COPY cli ./cli
COPY models ./models
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/fakeguard --create-home fakeguard

USER fakeguard
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"

# FAKEGUARD_DATABASE_URL (PostgreSQL in production), FAKEGUARD_BOOTSTRAP_ADMIN_KEY,
# FAKEGUARD_BLOB_DIR (a mounted volume) and the rest: see README "Settings".
CMD ["fakeguard", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
