# One small image for the exporter (`vigil serve`, the default command) and the demo service
# (`vigil demo ...`). Build: docker build -t vigil:0.1.0 .   Run: docker run -p 9477:9477 vigil:0.1.0
#
# The build stage installs the package into a virtualenv; the final stage copies only that
# virtualenv onto the same slim base, runs as an unprivileged user and checks /health/live with
# the Python standard library (no curl in the image).

FROM python:3.11.17-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/vigil
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY packages ./packages
# Three distributions: vigil-exporter (this directory), vigil-instrument and vigil-demo.
# Keep the bytecode pip compiles: without it every start compiles the libraries again, which is
# slower and leaves the exporter about 10 MiB larger (docs/performance.md).
RUN /opt/vigil/bin/pip install '.[asyncpg]' ./packages/vigil-instrument ./packages/vigil-demo \
    && /opt/vigil/bin/python -m compileall -q /opt/vigil/lib

FROM python:3.11.17-slim-bookworm
LABEL org.opencontainers.image.title="vigil" \
      org.opencontainers.image.description="Prometheus exporter and demo service of the Vigil bundle" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/vigil/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIGIL_HEALTHCHECK_URL=http://127.0.0.1:9477/health/live
# /var/lib/vigil: working directory and data (the embedded SQLite file, the alert log);
# /var/lib/vigil-rendered: deploy-time rendered configs (docker-compose.yml's alertmanager-config),
# written 0600 by the user of the service that reads them: Alertmanager's `nobody` (65534).
RUN groupadd --system --gid 10001 vigil \
    && useradd --system --uid 10001 --gid vigil --home-dir /var/lib/vigil --no-create-home \
       --shell /usr/sbin/nologin vigil \
    && mkdir -p /var/lib/vigil /var/lib/vigil-rendered /etc/vigil \
    && chown vigil:vigil /var/lib/vigil \
    && chown 65534:65534 /var/lib/vigil-rendered
COPY --from=build /opt/vigil /opt/vigil
USER 10001:10001
WORKDIR /var/lib/vigil
EXPOSE 9477 8080
# The demo service sets VIGIL_HEALTHCHECK_URL to its own port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['VIGIL_HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["vigil"]
CMD ["serve"]
