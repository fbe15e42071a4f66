#!/usr/bin/env bash
# The Containerfile's two base images made locally, for a build host that reaches a Debian
# mirror but no container registry (an intranet without Docker Hub or a registry mirror):
#
#   localhost/debian:bookworm-slim   debootstrap --variant=minbase from $MIRROR, apt's caches
#                                    and lists removed
#   localhost/rust:1-bookworm        the same plus gcc and libc6-dev (ring builds C) and this
#                                    host's Rust toolchain (`rustc --print sysroot`, which
#                                    holds cargo), and the CA certificates in $EXTRA_CA_DIR
#                                    (a TLS-inspecting proxy's or the crates mirror's)
#
# Then, from the repository's root:
#
#   podman build -f deploy/Containerfile --ignorefile deploy/Containerfile.dockerignore \
#     --build-arg RUST_IMAGE=localhost/rust:1-bookworm \
#     --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-slim -t bottomline:local .
#
# Needs root, debootstrap and podman (Debian: apt-get install debootstrap podman). Images that
# exist are kept; `FORCE=1` makes them again. $ISOLATION (default chroot, which needs no OCI
# runtime) is passed to `podman build --isolation`.
set -euo pipefail

MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SUITE="${SUITE:-bookworm}"
EXTRA_CA_DIR="${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"
ISOLATION="${ISOLATION:-chroot}"
work="$(mktemp -d /var/tmp/bottomline-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT

have() { [ "${FORCE:-0}" != 1 ] && podman image exists "$1"; }

if have "localhost/debian:$SUITE-slim"; then
  echo "localhost/debian:$SUITE-slim exists"
else
  echo "== debootstrap $SUITE from $MIRROR"
  debootstrap --variant=minbase "$SUITE" "$work/root" "$MIRROR" >"$work/debootstrap.log" ||
    { tail -20 "$work/debootstrap.log"; exit 1; }
  # What debian's slim images leave out: downloaded packages, package lists, docs.
  rm -rf "$work/root"/var/cache/apt/archives/*.deb "$work/root"/var/lib/apt/lists/* \
    "$work/root"/usr/share/doc/* "$work/root"/usr/share/man/* "$work/root"/usr/share/info/*
  tar -C "$work/root" -c . | podman import - "localhost/debian:$SUITE-slim"
  rm -rf "$work/root"
fi

if have "localhost/rust:1-$SUITE"; then
  echo "localhost/rust:1-$SUITE exists"
else
  echo "== localhost/rust:1-$SUITE with $(rustc --version)"
  ctx="$work/rust"
  mkdir -p "$ctx/ca"
  cp -a "$(rustc --print sysroot)" "$ctx/toolchain"
  find "$EXTRA_CA_DIR" -maxdepth 1 -name '*.crt' -exec cp {} "$ctx/ca/" \; 2>/dev/null || true
  cat >"$ctx/Containerfile" <<CF
FROM localhost/debian:$SUITE-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev ca-certificates && rm -rf /var/lib/apt/lists/*
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY toolchain /usr/local/rust
ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HOME=/usr/local/cargo
RUN cargo --version && rustc --version
CF
  podman build --isolation="$ISOLATION" -t "localhost/rust:1-$SUITE" "$ctx"
fi
podman images --filter reference=localhost/debian --filter reference=localhost/rust
