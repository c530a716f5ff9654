# canon's images: the Drone plugin (canon-plugin) and the webhook listener (canon-listener).
#
#   docker build --target canon-plugin   -t canon-plugin .
#   docker build --target canon-listener -t canon-listener .
#
# Always name the target: the stages are ordered so that the classic builder (which builds every
# stage before the target) never needs the listener's stage to build the plugin.
#
# Build arguments:
#   RUST_IMAGE     builder image (default rust:1-bookworm)
#   RUNTIME_IMAGE  base of both images (default debian:bookworm-slim)
#   BINARIES       source: build with cargo in RUST_IMAGE (default);
#                  prebuilt: copy prebuilt/canon-plugin and prebuilt/canon-listener from the build
#                  context (built on a bookworm host), so RUST_IMAGE needs only a shell. With no
#                  registry, scripts/base-image.sh makes a local base that serves as both images:
#                    base=$(scripts/base-image.sh)
#                    docker build --build-arg RUST_IMAGE=$base --build-arg RUNTIME_IMAGE=$base \
#                      --build-arg BINARIES=prebuilt --target canon-plugin -t canon-plugin <context>
#   ABRA_URL, ABRA_SHA256  optional: an abra release binary to add to canon-plugin, checked
#                  against its sha256 (both or neither)
#   VERSION, REVISION, CREATED  OCI label values (set by CI)

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- binaries -------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
# Marks the builder stage's image so a local build can prune it (`docker image prune --filter
# label=canon.stage=builder`): the classic builder leaves it behind as a dangling image.
LABEL canon.stage=builder
ARG BINARIES=source
WORKDIR /src
COPY . .
RUN set -eu; \
    mkdir -p /out; \
    case "$BINARIES" in \
      source) \
        cargo build --release --locked -p canon-plugin -p canon-listener; \
        cp target/release/canon-plugin /out/; \
        cp target/release/canon-listener /out/ ;; \
      prebuilt) \
        found=0; \
        if [ -f prebuilt/canon-plugin ]; then cp prebuilt/canon-plugin /out/; found=1; fi; \
        if [ -f prebuilt/canon-listener ]; then cp prebuilt/canon-listener /out/; found=1; fi; \
        [ "$found" = 1 ] || { echo "BINARIES=prebuilt but prebuilt/ holds no canon binary" >&2; exit 1; } ;; \
      *) echo "BINARIES must be source or prebuilt, not '$BINARIES'" >&2; exit 1 ;; \
    esac; \
    chmod 0755 /out/*

# ---- shared runtime -------------------------------------------------------------------------
# TLS roots and libssl3 for both binaries. A base that already has them (the local base from
# scripts/base-image.sh) is used as it is, without apt.
FROM ${RUNTIME_IMAGE} AS runtime
RUN set -eu; \
    if ! dpkg-query -W -f='${Status}\n' ca-certificates libssl3 2>/dev/null | grep -c 'install ok installed' | grep -qx 2; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libssl3; \
      rm -rf /var/lib/apt/lists/*; \
    fi
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

# ---- canon-plugin ---------------------------------------------------------------------------
FROM runtime AS canon-plugin
ARG ABRA_URL=""
ARG ABRA_SHA256=""
# git for checkouts and mirrors; only the Docker client (the engine is the host's, through
# /var/run/docker.sock): bookworm has no client-only package, so /usr/bin/docker is taken from
# docker.io and the rest of that package (engine, containerd, runc) is left out.
RUN set -eu; \
    need_apt=0; \
    command -v git >/dev/null 2>&1 || need_apt=1; \
    command -v docker >/dev/null 2>&1 || need_apt=1; \
    [ -z "$ABRA_URL" ] || need_apt=1; \
    if [ "$need_apt" = 1 ]; then apt-get update; fi; \
    if ! command -v git >/dev/null 2>&1; then \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends git; \
    fi; \
    if ! command -v docker >/dev/null 2>&1; then \
      cd /tmp; apt-get download docker.io; \
      dpkg-deb --fsys-tarfile docker.io_*.deb | tar -x -C / ./usr/bin/docker; \
      rm -f docker.io_*.deb; \
    fi; \
    if [ -n "$ABRA_URL" ]; then \
      [ -n "$ABRA_SHA256" ] || { echo "ABRA_URL needs ABRA_SHA256" >&2; exit 1; }; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl; \
      curl -fsSL -o /usr/local/bin/abra "$ABRA_URL"; \
      echo "$ABRA_SHA256  /usr/local/bin/abra" | sha256sum -c -; \
      chmod 0755 /usr/local/bin/abra; \
      apt-get purge -y curl; apt-get autoremove -y; \
    fi; \
    rm -rf /var/lib/apt/lists/*; \
    git --version; docker --version
COPY --from=builder /out/canon-plugin /bin/canon-plugin
RUN ["/bin/canon-plugin", "--version"]
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="canon-plugin" \
      org.opencontainers.image.description="Drone plugin and CLI: cold CI of a Co-op Cloud recipe at a release tag, the promote gate, the weekly sweep" \
      org.opencontainers.image.source="https://git.coopcloud.tech/canon/canon" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# Drone runs the step as root with the workspace as working directory (/drone/src); no USER, so
# the plugin can write its report into a checkout the clone step created.
WORKDIR /drone/src
ENTRYPOINT ["/bin/canon-plugin"]

# ---- canon-listener -------------------------------------------------------------------------
FROM runtime AS canon-listener
COPY --from=builder /out/canon-listener /bin/canon-listener
RUN ["/bin/canon-listener", "--version"]
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="canon-listener" \
      org.opencontainers.image.description="Receives Gitea/Forgejo/GitHub tag webhooks, journals them durably, syncs mirrors and starts Drone builds" \
      org.opencontainers.image.source="https://git.coopcloud.tech/canon/canon" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
RUN useradd --system --home-dir /var/lib/canon --create-home canon
USER canon
WORKDIR /var/lib/canon
ENV CANON_BIND=0.0.0.0:8088 \
    CANON_STATE_DIR=/var/lib/canon
VOLUME ["/var/lib/canon"]
EXPOSE 8088
ENTRYPOINT ["/bin/canon-listener"]
