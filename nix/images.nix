# canon's two images built with nixpkgs' dockerTools, for hosts without a Debian userland (NixOS):
#
#   nix build .#canon-plugin-image   && docker load < result   # canon-plugin:<version>
#   nix build .#canon-listener-image && docker load < result   # canon-listener:<version>
#
# The same contents, user, entrypoint, environment and labels as the Dockerfile's images that
# scripts/build-images.sh builds: canon-plugin runs as root in /drone/src with the Docker client
# and busybox (its `sh`) on PATH; canon-listener runs as canon (10001) in /var/lib/canon, which
# it owns. Each image carries this release's version as its tag; `docker tag` adds `latest`
# where a pipeline still names it.
{
  lib,
  dockerTools,
  canon,
  docker-client,
  pkgsStatic,
  cacert,
  runCommand,
}:

let
  inherit (canon) version;
  labels = title: description: {
    "org.opencontainers.image.title" = title;
    "org.opencontainers.image.description" = description;
    "org.opencontainers.image.source" = "https://git.coopcloud.tech/canon/canon";
    "org.opencontainers.image.licenses" = "AGPL-3.0-or-later";
    "org.opencontainers.image.version" = version;
  };
  caFile = "/etc/ssl/certs/ca-certificates.crt";
  # /etc/passwd, /etc/group and the CA bundle at the path the Dockerfile's images have.
  etc =
    name: passwd: group:
    runCommand "canon-${name}-etc" { } ''
      mkdir -p $out/etc/ssl/certs
      cp ${cacert}/etc/ssl/certs/ca-bundle.crt $out${caFile}
      echo '${passwd}' > $out/etc/passwd
      echo '${group}' > $out/etc/group
    '';
  # Only the binary the image is for, at /bin, as in the Dockerfile's images.
  bin =
    name:
    runCommand "canon-${name}-bin" { } ''
      mkdir -p $out/bin
      ln -s ${canon}/bin/${name} $out/bin/${name}
    '';
in
{
  canon-plugin-image = dockerTools.buildLayeredImage {
    name = "canon-plugin";
    tag = version;
    contents = [
      (bin "canon-plugin")
      docker-client
      pkgsStatic.busybox
      (etc "plugin" "root:x:0:0:root:/root:/bin/sh" "root:x:0:")
    ];
    extraCommands = ''
      mkdir -p tmp root drone/src
      chmod 1777 tmp
    '';
    config = {
      Entrypoint = [ "/bin/canon-plugin" ];
      WorkingDir = "/drone/src";
      Env = [
        "PATH=/usr/local/bin:/usr/bin:/bin"
        "HOME=/root"
        "SSL_CERT_FILE=${caFile}"
      ];
      Labels =
        labels "canon-plugin"
          "Drone plugin and CLI: cold CI of a Co-op Cloud recipe at a release tag, the promote gate, the weekly sweep";
    };
  };

  canon-listener-image = dockerTools.buildLayeredImage {
    name = "canon-listener";
    tag = version;
    contents = [
      (bin "canon-listener")
      (etc "listener" "canon:x:10001:10001:canon:/var/lib/canon:/nonexistent" "canon:x:10001:")
    ];
    extraCommands = ''
      mkdir -p tmp var/lib/canon
      chmod 1777 tmp
    '';
    fakeRootCommands = ''
      chown 10001:10001 var/lib/canon
    '';
    config = {
      Entrypoint = [ "/bin/canon-listener" ];
      User = "10001:10001";
      WorkingDir = "/var/lib/canon";
      Env = [
        "PATH=/bin"
        "HOME=/var/lib/canon"
        "SSL_CERT_FILE=${caFile}"
        "CANON_BIND=0.0.0.0:8088"
        "CANON_STATE_DIR=/var/lib/canon"
      ];
      ExposedPorts."8088/tcp" = { };
      Volumes."/var/lib/canon" = { };
      Labels =
        labels "canon-listener"
          "Receives Gitea/Forgejo/GitHub tag webhooks, journals them durably, syncs mirrors and starts Drone builds";
    };
  };
}
