# Non-flake entry point: `nix-build nix` builds canon with the nixpkgs on NIX_PATH.
{
  pkgs ? import <nixpkgs> { },
}:
pkgs.callPackage ./package.nix { }
