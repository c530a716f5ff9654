{
  description = "canon: keeps a tested canonical release of every enrolled Co-op Cloud recipe current";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: _prev: { canon = final.callPackage ./nix/package.nix { }; };

      packages = forAllSystems (
        pkgs:
        let
          canon = pkgs.callPackage ./nix/package.nix { };
          images = pkgs.callPackage ./nix/images.nix { inherit canon; };
        in
        {
          inherit canon;
          inherit (images) canon-plugin-image canon-listener-image;
          default = canon;
        }
      );

      nixosModules = {
        canon =
          { ... }:
          {
            imports = [ ./nix/module.nix ];
            nixpkgs.overlays = [ self.overlays.default ];
          };
        default = self.nixosModules.canon;
      };
    };
}
