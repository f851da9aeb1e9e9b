# syntax=docker/dockerfile:1
# Relay's container image (docs/container.md).
#
#   docker build -t relay .
#   docker run -p 8080:8080 -v relay-data:/data --stop-timeout 30 relay
#
# Stages: `build` compiles the Rust extension and makes the abi3 wheel with maturin; `install`
# puts that wheel (and its dependencies) in a venv; `runtime` is a slim Python with only that
# venv, run by an unprivileged user. The base images are arguments, so the image also builds
# where only a mirror or a locally made base is reachable:
#   --build-arg BUILD_IMAGE=mirror.example/rust:1.95-slim-bookworm
#   --build-arg RUNTIME_IMAGE=mirror.example/python:3.11-slim-bookworm
# The build stage needs cargo/rustc (>= the crate's rust-version) and a C linker on PATH, and
# Debian's apt for python3; the runtime needs python3 (>= 3.11) with venv.
ARG BUILD_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${BUILD_IMAGE} AS build
# python3 runs maturin and PyO3's build script. The wheel is abi3 (CPython >= 3.11), so this
# interpreter need not be the runtime's.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
# The maturin the project pins (constraints.txt).
ARG MATURIN_VERSION=1.16.0
RUN python3 -m venv /opt/maturin \
 && /opt/maturin/bin/pip install --no-cache-dir "maturin==${MATURIN_VERSION}"
WORKDIR /src
COPY Cargo.toml Cargo.lock pyproject.toml README.md LICENSE ./
COPY rust/ rust/
COPY python/ python/
# Downloaded crates and compiled dependencies are build caches (BuildKit and buildah keep them
# between builds), so a change of the Python code alone does not recompile the Rust. Only the
# wheel, written outside them, is part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    /opt/maturin/bin/maturin build --release --locked --out /wheels

# The venv is made on the runtime's own base, then copied alone into the final stage: the wheel
# file never becomes a layer of the image. (COPY --from, not a RUN bind mount of the build
# stage: builders such as buildah do not count a mount's content in their layer cache, and
# would keep installing an old wheel.)
FROM ${RUNTIME_IMAGE} AS install
# Extras installed with the wheel: otel sends traces and metrics to a collector (compose has
# one); add bedrock for AWS Bedrock (`--build-arg RELAY_EXTRAS=otel,bedrock`).
ARG RELAY_EXTRAS=otel
# Dependencies at the versions CI tested.
COPY constraints.txt /tmp/constraints.txt
COPY --from=build /wheels/ /tmp/wheels/
RUN python3 -m venv /opt/relay \
 && /opt/relay/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt \
      "$(ls /tmp/wheels/*.whl)[${RELAY_EXTRAS}]"

FROM ${RUNTIME_IMAGE} AS runtime
# One unprivileged user with a fixed numeric id (Kubernetes' runAsNonRoot checks the number);
# /data is its home and the volume of the SQLite ledger.
RUN groupadd --system --gid 10001 relay \
 && useradd --system --uid 10001 --gid relay --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin relay \
 && install -d -o relay -g relay -m 0750 /data
COPY --from=install /opt/relay /opt/relay
# The default config: the offline echo provider, as `relay serve` starts anywhere. Mount yours
# over it (-v ./config.yaml:/etc/relay/config.yaml:ro) or point RELAY_CONFIG elsewhere; the
# environment overrides either (SERVER_PORT, DATABASE_URL, REDIS_ADDRESS, RELAY_ADMIN_KEY, ...).
COPY configs/relay.yaml /etc/relay/config.yaml
ENV PATH=/opt/relay/bin:$PATH \
    RELAY_CONFIG=/etc/relay/config.yaml \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The working directory is the volume: the default database.url (sqlite:///relay.db) is
# relative, so the ledger lands in /data/relay.db.
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8080
# SIGTERM drains: /readyz turns 503 at once, in-flight requests and streams get
# server.drain_timeout_s (10 s by default) to finish, and granian stops a worker that is still
# busy 5 s after that. Give the container more than drain_timeout_s + 5 s to stop
# (docker run --stop-timeout 30, compose stop_grace_period: 30s); Docker's 10 s default cuts
# the drain short.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-m", "relay.healthcheck"]
ENTRYPOINT ["relay"]
# --host: inside the container the gateway listens on every interface, whatever the config says.
CMD ["serve", "--host", "0.0.0.0"]
