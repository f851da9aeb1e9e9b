#!/usr/bin/env bash
# Build the Dockerfile with podman on a machine that reaches package registries but no image
# registry, run it, and drive it from the host (tests/deploy/test_container.py).
#
#   scripts/container.sh base    the base image from Debian packages (cached, see below)
#   scripts/container.sh build   base, then the Dockerfile -> $RELAY_TEST_IMAGE
#   scripts/container.sh test    build, then the container tests (what `make container-test` runs)
#   scripts/container.sh podman ARGS...   podman with this script's storage (to look around)
#
# Needs root, podman, buildah, runc and mmdebstrap (Debian packages; .ci/run installs them) and
# a Rust toolchain on the host (`rustc --print sysroot`), which the build stage borrows
# read-only because Debian's rustc is older than the crate's rust-version.
#
# Cache: podman's storage lives in $RELAY_CONTAINER_CACHE (default ~/.cache/relay-container),
# so the base image and the layers of earlier builds survive between runs on one machine. The
# base image's tag carries a hash of its recipe: change the recipe and a new one is built.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${RELAY_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/relay-container}
IMAGE=${RELAY_TEST_IMAGE:-localhost/relay:test}
PYTHON=${PYTHON:-python3}
SUITE=bookworm
# The base serves both stages: python3 for maturin and the runtime's venv, gcc/libc6-dev as
# Rust's linker, ca-certificates for HTTPS from pip, cargo and the gateway.
PACKAGES=python3,python3-venv,ca-certificates,gcc,libc6-dev
# Debian's own sources list (the host's), pasted into the image by mmdebstrap.
SOURCES=${RELAY_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}
# The image's environment: where the build stage finds the borrowed toolchain (see build()).
BASE_ENV=(
  'ENV LANG=C.UTF-8'
  'ENV CARGO_HOME=/usr/local/cargo'
  'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
)

log() { printf 'container: %s\n' "$*" >&2; }

setup_podman() {
  mkdir -p "$CACHE/storage" "$CACHE/run"
  # Why each line: shared/containers.md (no systemd, runc not crun, limits this host allows).
  cat > "$CACHE/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$CACHE/storage"
runroot = "$CACHE/run"
EOF
  cat > "$CACHE/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
  export CONTAINERS_STORAGE_CONF=$CACHE/storage.conf CONTAINERS_CONF=$CACHE/containers.conf
}

base_tag() {
  local key
  key=$({ echo "$SUITE $PACKAGES"; printf '%s\n' "${BASE_ENV[@]}"; cat "$SOURCES"; } |
    sha256sum | cut -c1-12)
  echo "localhost/relay-base:$SUITE-$key"
}

base() {
  local tag tmp changes=()
  tag=$(base_tag)
  if podman image exists "$tag"; then
    log "base image $tag (cached)"
    echo "$tag"
    return
  fi
  log "building base image $tag from Debian packages"
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: tmp is local
  trap "rm -rf '$tmp'" RETURN
  nice -n 10 mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
    --aptopt='Apt::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$SUITE" "$tmp/rootfs.tar" "$SOURCES" >&2
  for line in "${BASE_ENV[@]}"; do changes+=(--change "$line"); done
  podman import --quiet "${changes[@]}" "$tmp/rootfs.tar" "$tag" >/dev/null
  # Older recipes' bases are no longer needed.
  podman images --format '{{.Repository}}:{{.Tag}}' localhost/relay-base |
    grep -vxF "$tag" | xargs -r podman rmi -f >/dev/null 2>&1 || true
  echo "$tag"
}

build() {
  local tag sysroot
  tag=$(base)
  sysroot=$(rustc --print sysroot)
  log "building $IMAGE (base $tag, Rust $(rustc --version | cut -d' ' -f2) from the host)"
  # --format docker keeps HEALTHCHECK; the CA bundle and the toolchain are bind mounts of the
  # build only, never layers of the image.
  nice -n 10 podman build --format docker --network host --layers \
    --build-arg BUILD_IMAGE="$tag" --build-arg RUNTIME_IMAGE="$tag" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    -v "$sysroot:/usr/local/rust:ro" \
    -t "$IMAGE" . >&2
  # Layers of builds older than a day go (the compiled crates stay in the build cache); recent
  # ones keep the next build warm.
  podman image prune -f --filter until=24h >/dev/null || true
}

case "${1:-}" in
  base) setup_podman; base ;;
  build) setup_podman; build ;;
  test)
    setup_podman
    build
    RELAY_TEST_IMAGE=$IMAGE \
      $PYTHON -m pytest tests/deploy/test_container.py -p no:cacheprovider ${PYTEST_ARGS:-}
    ;;
  podman) shift; setup_podman; exec podman "$@" ;;
  *) echo "usage: $0 base|build|test|podman ARGS..." >&2; exit 2 ;;
esac
