# canon's images: the Drone plugin (canon-plugin) and the webhook listener (canon-listener).
#
# Both are FROM scratch: no registry and no base image. scripts/build-images.sh stages the build
# context this file expects and runs the builds:
#
#   scripts/build-images.sh            # canon-plugin:<version>, canon-listener:<version> and :latest
#
# The context holds plugin-rootfs.tar and listener-rootfs.tar: the release binaries, the shared
# libraries they load (copied from the host the binaries were built on), CA certificates,
# /etc/passwd and /etc/group; canon-plugin also the Docker client and busybox (its `sh`).
#
# Build arguments: VERSION, REVISION, CREATED  OCI label values (set by CI)

# ---- canon-listener -------------------------------------------------------------------------
FROM scratch AS canon-listener
ADD listener-rootfs.tar /
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
ENV PATH=/bin \
    HOME=/var/lib/canon \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    CANON_BIND=0.0.0.0:8088 \
    CANON_STATE_DIR=/var/lib/canon
# The user canon (10001) from the image's /etc/passwd; it owns /var/lib/canon.
USER 10001:10001
WORKDIR /var/lib/canon
VOLUME ["/var/lib/canon"]
EXPOSE 8088
ENTRYPOINT ["/bin/canon-listener"]

# ---- canon-plugin ---------------------------------------------------------------------------
FROM scratch AS canon-plugin
ADD plugin-rootfs.tar /
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
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    HOME=/root \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# Drone runs the step as root with the workspace as working directory (/drone/src); no USER, so
# the plugin can write its report into a checkout the clone step created and reach the host's
# engine through /var/run/docker.sock.
WORKDIR /drone/src
ENTRYPOINT ["/bin/canon-plugin"]
