# kpiloop collector image: slim Python, installed from this source tree, run as a non-root user.
#   docker build -t kpiloop .
#   docker run -p 4317:4317 -p 4318:4318 -p 9464:9464 -v kpiloop-data:/var/lib/kpiloop kpiloop
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KPILOOP_HOME=/var/lib/kpiloop

WORKDIR /src
COPY pyproject.toml README.md ./
COPY kpiloop ./kpiloop
RUN pip install --no-compile . \
    && rm -rf /src \
    && groupadd --system --gid 10001 kpiloop \
    && useradd --system --uid 10001 --gid kpiloop --home-dir /var/lib/kpiloop --shell /usr/sbin/nologin kpiloop \
    && mkdir -p /var/lib/kpiloop /etc/kpiloop \
    && chown kpiloop:kpiloop /var/lib/kpiloop

COPY deploy/kpiloop/otel-config.yaml /etc/kpiloop/otel-config.yaml

USER 10001:10001
WORKDIR /var/lib/kpiloop
VOLUME ["/var/lib/kpiloop"]
EXPOSE 4317 4318 9464

# /metrics answers once the server is up; the standard library keeps the image free of curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["kpiloop"]
CMD ["serve", "--config", "/etc/kpiloop/otel-config.yaml"]
