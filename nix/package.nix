# canon: both binaries (canon-plugin, canon-listener) from this workspace, built offline from
# Cargo.lock. canon-plugin shells out to the Docker client, so it is put on its PATH (git is
# libgit2, linked in).
{
  lib,
  rustPlatform,
  pkg-config,
  openssl,
  makeWrapper,
  docker-client,
}:

let
  workspace = (lib.importTOML ../Cargo.toml).workspace.package;
in
rustPlatform.buildRustPackage {
  pname = "canon";
  inherit (workspace) version;

  # The workspace without build output, local state or VCS metadata.
  src = lib.cleanSourceWith {
    src = ../.;
    filter =
      path: type:
      let
        base = baseNameOf path;
      in
      !(builtins.elem base [
        "target"
        ".git"
        "canon-state"
        "result"
        "prebuilt"
      ]);
  };

  cargoLock.lockFile = ../Cargo.lock;

  cargoBuildFlags = [
    "-p"
    "canon-plugin"
    "-p"
    "canon-listener"
  ];

  nativeBuildInputs = [
    pkg-config
    makeWrapper
  ];
  buildInputs = [ openssl ];

  # The test suite needs a Docker engine, git fixtures and loopback servers; the Nix build
  # sandbox has no engine, and a test that cannot reach what it needs fails by design. Run it
  # with scripts/test.sh instead.
  doCheck = false;

  postInstall = ''
    wrapProgram $out/bin/canon-plugin \
      --prefix PATH : ${
        lib.makeBinPath [
          docker-client
        ]
      }
  '';

  meta = {
    description = "Keeps a tested canonical release of every enrolled Co-op Cloud recipe current";
    homepage = workspace.repository;
    license = lib.licenses.agpl3Plus;
    mainProgram = "canon-plugin";
    platforms = lib.platforms.linux;
  };
}
