# NixOS module for canon:
# - services.canon-listener: the webhook listener, a long-running hardened service; its settings
#   are the CANON_* variables listed in ./listener-env.nix, its secrets come from environmentFile.
# - services.canon-sweep: the weekly sweep as a systemd timer, for a host that runs canon on its
#   own (no Drone): `canon-plugin sweep --inline` over the enrollment, with the docker runner.
# Both run as the system user `canon` and share the state directory /var/lib/canon.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    mkMerge
    types
    ;

  listenerCfg = config.services.canon-listener;
  sweepCfg = config.services.canon-sweep;

  # With the flake's overlay pkgs.canon exists; without it, build the package from this tree.
  defaultPackage = pkgs.canon or (pkgs.callPackage ./package.nix { });

  envTable = import ./listener-env.nix;
  # With the listener on this host, the sweep asks its API whether a tag's webhook arrived
  # (missed webhooks); on loopback, whatever address the listener binds.
  listenerBind =
    if listenerCfg.settings.bind or null != null then listenerCfg.settings.bind else envTable.bind.default;
  sweepListenerArgs = lib.optional listenerCfg.enable "--listener-url" ++ lib.optional listenerCfg.enable
    "http://127.0.0.1:${builtins.elemAt (builtins.match ".*:([0-9]+)" listenerBind) 0}";
  isSecret = e: e.secret or false;
  plainEntries = lib.filterAttrs (_: e: !(isSecret e)) envTable;
  secretVars = lib.mapAttrsToList (_: e: e.env) (lib.filterAttrs (_: isSecret) envTable);

  typeOf =
    t:
    {
      str = types.str;
      path = types.path;
      int = types.ints.positive;
      listOfStr = types.listOf types.str;
    }
    .${t};

  settingOption =
    _: e:
    if e ? default then
      mkOption {
        type = typeOf e.type;
        inherit (e) default description;
      }
    else if e.required or false then
      mkOption {
        type = typeOf e.type;
        inherit (e) description;
      }
    else
      mkOption {
        type = types.nullOr (typeOf e.type);
        default = null;
        inherit (e) description;
      };

  # A path literal is copied into the store ("${p}"); lists travel comma-joined, as the listener
  # reads them.
  envValue =
    v:
    if builtins.isList v then
      lib.concatStringsSep "," v
    else if builtins.isPath v then
      "${v}"
    else
      toString v;

  listenerEnvironment = lib.mapAttrs' (name: e: lib.nameValuePair e.env (envValue listenerCfg.settings.${name})) (
    lib.filterAttrs (name: _: listenerCfg.settings.${name} != null) plainEntries
  );

  stateDirectoryName = "canon";
  defaultStateDir = "/var/lib/${stateDirectoryName}";

  # Confinement for a network service that only needs its state directory.
  hardening = {
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
      "AF_UNIX"
    ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    RemoveIPC = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
    ];
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    UMask = "0027";
  };

  extraStateDir = dir: lib.optional (dir != defaultStateDir) dir;
in
{
  options.services.canon-listener = {
    enable = mkEnableOption "canon-listener, which turns forge tag webhooks into Drone builds of canon's cold CI";

    package = mkOption {
      type = types.package;
      default = defaultPackage;
      defaultText = lib.literalExpression "pkgs.canon";
      description = "The canon package providing bin/canon-listener.";
    };

    settings = lib.mapAttrs settingOption plainEntries;

    environmentFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/secrets/canon-listener.env";
      description = ''
        A file of KEY=VALUE lines read by systemd (EnvironmentFile=), kept out of the Nix store,
        holding the secret settings: ${lib.concatStringsSep ", " secretVars}.
        CANON_WEBHOOK_SECRETS and CANON_DRONE_TOKEN are required.
      '';
    };
  };

  options.services.canon-sweep = {
    enable = mkEnableOption "the weekly canon sweep on this host (canon-plugin sweep --inline)";

    package = mkOption {
      type = types.package;
      default = defaultPackage;
      defaultText = lib.literalExpression "pkgs.canon";
      description = "The canon package providing bin/canon-plugin.";
    };

    enrollment = mkOption {
      type = types.path;
      description = "The enrollment file (--config).";
    };

    stateDir = mkOption {
      type = types.str;
      default = defaultStateDir;
      description = "The state directory (--state-dir), shared with canon-listener.";
    };

    startAt = mkOption {
      type = types.str;
      default = "Sun *-*-* 03:00:00 UTC";
      description = ''
        When the sweep runs (systemd OnCalendar). The default matches the Drone cron job
        `weekly` ("0 0 3 * * 0", Sunday 03:00 UTC). A missed run (host down) runs at the next
        boot (Persistent=true).
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "--jobs"
        "2"
      ];
      description = "More arguments for `canon-plugin sweep`.";
    };

    environmentFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/secrets/canon-sweep.env";
      description = "A file of KEY=VALUE lines for secrets, e.g. PLUGIN_UPSTREAM_TOKEN, PLUGIN_MIRROR_TOKEN, PLUGIN_LISTENER_TOKEN (needed when the listener sets CANON_ADMIN_TOKEN), and PLUGIN_SSH_KEY_FILE (the path of a key file: a key does not fit on one line).";
    };
  };

  config = mkMerge [
    (mkIf (listenerCfg.enable || sweepCfg.enable) {
      users.users.canon = {
        isSystemUser = true;
        group = "canon";
        home = defaultStateDir;
        description = "canon service user";
      };
      users.groups.canon = { };
    })

    (mkIf listenerCfg.enable {
      assertions = [
        {
          assertion = listenerCfg.environmentFile != null;
          message = "services.canon-listener.environmentFile must be set: the listener refuses to start without CANON_WEBHOOK_SECRETS and CANON_DRONE_TOKEN.";
        }
      ];

      systemd.services.canon-listener = {
        description = "canon webhook listener";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        environment = listenerEnvironment;
        serviceConfig = hardening // {
          ExecStart = "${listenerCfg.package}/bin/canon-listener";
          User = "canon";
          Group = "canon";
          StateDirectory = stateDirectoryName;
          StateDirectoryMode = "0750";
          WorkingDirectory = defaultStateDir;
          ReadWritePaths = extraStateDir listenerCfg.settings.stateDir;
          EnvironmentFile = lib.optional (listenerCfg.environmentFile != null) listenerCfg.environmentFile;
          # Room for the connection cap (kept 64 below this limit) plus the journal, git and
          # the HTTP clients; the default 1024 would lower a cap set past about 960.
          LimitNOFILE = 65536;
          # SIGTERM: stop accepting, persist what is in flight, exit 0.
          KillSignal = "SIGTERM";
          TimeoutStopSec = "30s";
          Restart = "on-failure";
          RestartSec = "5s";
        };
      };
    })

    (mkIf sweepCfg.enable {
      assertions = [
        {
          assertion = config.virtualisation.docker.enable;
          message = "services.canon-sweep runs recipes with the docker runner: enable virtualisation.docker (with swarm mode initialised).";
        }
      ];

      systemd.services.canon-sweep = {
        description = "canon weekly sweep";
        wants = [ "network-online.target" ];
        after = [
          "network-online.target"
          "docker.service"
        ];
        requires = [ "docker.service" ];
        environment.HOME = defaultStateDir;
        serviceConfig = {
          Type = "oneshot";
          ExecStart = lib.escapeShellArgs (
            [
              "${sweepCfg.package}/bin/canon-plugin"
              "sweep"
              "--inline"
              "--config"
              "${sweepCfg.enrollment}"
              "--state-dir"
              sweepCfg.stateDir
            ]
            ++ sweepListenerArgs
            ++ sweepCfg.extraArgs
          );
          User = "canon";
          Group = "canon";
          # Access to the Docker socket: the runner deploys and removes stacks.
          SupplementaryGroups = [ "docker" ];
          StateDirectory = stateDirectoryName;
          StateDirectoryMode = "0750";
          WorkingDirectory = defaultStateDir;
          ReadWritePaths = extraStateDir sweepCfg.stateDir;
          EnvironmentFile = lib.optional (sweepCfg.environmentFile != null) sweepCfg.environmentFile;
          TimeoutStartSec = "12h";
          NoNewPrivileges = true;
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          PrivateDevices = true;
          ProtectKernelTunables = true;
          ProtectKernelModules = true;
          ProtectControlGroups = true;
          RestrictSUIDSGID = true;
          LockPersonality = true;
          UMask = "0027";
        };
      };

      systemd.timers.canon-sweep = {
        description = "canon weekly sweep";
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = sweepCfg.startAt;
          Persistent = true;
          RandomizedDelaySec = "15m";
        };
      };
    })
  ];
}
