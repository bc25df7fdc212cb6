# Teleconsult server image: slim Python, non-root, health-checked.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TELECONSULT_HOST=0.0.0.0 TELECONSULT_PORT=8080 TELECONSULT_DATA_DIR=/data

RUN useradd --create-home --uid 10001 teleconsult \
    && mkdir -p /data /app && chown teleconsult /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY teleconsult ./teleconsult
COPY web ./web
RUN pip install --no-cache-dir -e .

USER teleconsult
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"

# Off loopback the server needs TLS (a certificate, or TELECONSULT_BEHIND_PROXY=1 behind a TLS proxy) and the address
# patients reach (TELECONSULT_PUBLIC_URL=https://tc.example.org), used in links and to check Origins.
CMD ["teleconsult", "serve"]
