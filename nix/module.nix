# NixOS module for canon:
# - services.canon-listener: the webhook listener, a long-running hardened service; its settings
#   are the CANON_* variables listed in ./listener-env.nix, its secrets come from environmentFile.
# - services.canon-sweep: the weekly sweep as a systemd timer, for a host that runs canon on its
#   own (no Drone): `canon-plugin sweep --inline` over the enrollment, with the docker runner.
# - services.canon: what both share: the enrollment as Nix data (rendered to
#   /etc/canon/enrollment.yml, the one file the listener, the sweep and the Drone steps read), and
#   the Docker engine the docker runner needs (asserted, and a single-node swarm initialised once).
# Both run as the system user `canon` and share the state directory /var/lib/canon with the
# plugin in Drone (root): the folder is group `canon`, setgid, group-writable, and canon keeps
# what it creates there group-writable.
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

  canonCfg = config.services.canon;
  listenerCfg = config.services.canon-listener;
  sweepCfg = config.services.canon-sweep;

  # The enrollment the module writes from services.canon.enrollment.
  enrollmentPath = "/etc/canon/enrollment.yml";
  # What the listener and the sweep read: their own option when set, else the rendered file.
  enrollmentFor = own: if own != null then own else enrollmentPath;
  # The state directory: group `canon`, setgid (what is created in it gets that group) and
  # writable by the group, so the listener (canon) and the plugin in Drone (root) share it.
  stateDirMode = "2770";
  stateUMask = "0007";

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
    name: e:
    if name == "enrollment" then
      mkOption {
        type = types.nullOr types.path;
        default = null;
        description = "${e.description} Unset: ${enrollmentPath}, written from services.canon.enrollment.";
      }
    else if e ? default then
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

  listenerSettings = listenerCfg.settings // {
    enrollment = enrollmentFor listenerCfg.settings.enrollment;
  };
  listenerEnvironment = lib.mapAttrs' (name: e: lib.nameValuePair e.env (envValue listenerSettings.${name})) (
    lib.filterAttrs (name: _: listenerSettings.${name} != null) plainEntries
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
    UMask = stateUMask;
  };

  extraStateDir = dir: lib.optional (dir != defaultStateDir) dir;
in
{
  options.services.canon = {
    enrollment = mkOption {
      type = types.nullOr types.attrs;
      default = null;
      example = lib.literalExpression ''
        {
          forge = { upstream = "https://git.coopcloud.tech"; mirror = "https://git.example.org"; };
          recipes = [ { name = "custom-html"; upstream = "coop-cloud/custom-html"; mirror = "recipe-maintainers/custom-html"; } ];
        }
      '';
      description = ''
        The enrollment file's content as Nix data (the keys of docs/reference/enrollment.md),
        rendered to ${enrollmentPath}: the one file canon-listener, canon-sweep and the Drone
        steps (which mount /etc/canon) read. Unset: write that file yourself, or point the
        services' own enrollment options at one.
      '';
    };

    dockerRunner = mkOption {
      type = types.bool;
      default = sweepCfg.enable;
      defaultText = lib.literalExpression "config.services.canon-sweep.enable";
      description = ''
        Whether this host runs canon's docker runner (the sweep here, or Drone steps of a runner
        on this host): asserts that Docker is enabled with live-restore off (swarm mode refuses
        it) and initialises a single-node swarm once, when none is active (canon-swarm-init).
      '';
    };

    swarmAdvertiseAddr = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = "The address `docker swarm init --advertise-addr` gets (a single-node swarm).";
    };
  };

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
      type = types.nullOr types.path;
      default = null;
      description = "The enrollment file (--config). Unset: ${enrollmentPath}, written from services.canon.enrollment.";
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
    (mkIf (listenerCfg.enable || sweepCfg.enable || canonCfg.dockerRunner) {
      users.users.canon = {
        isSystemUser = true;
        group = "canon";
        home = defaultStateDir;
        description = "canon service user";
      };
      users.groups.canon = { };
      # The shared state dir exists, with its group and mode, before any service or Drone step
      # writes to it; systemd keeps the mode of StateDirectory= in step (StateDirectoryMode).
      systemd.tmpfiles.rules = [ "d ${defaultStateDir} ${stateDirMode} canon canon -" ];
    })

    (mkIf (canonCfg.enrollment != null) {
      environment.etc."canon/enrollment.yml" = {
        # JSON is YAML: the enrollment reader takes it as written.
        text = builtins.toJSON canonCfg.enrollment;
        mode = "0644";
      };
    })

    (mkIf canonCfg.dockerRunner {
      assertions = [
        {
          assertion = config.virtualisation.docker.enable;
          message = "services.canon.dockerRunner: canon's docker runner deploys recipes on this host's engine; set virtualisation.docker.enable = true.";
        }
        {
          assertion = !(config.virtualisation.docker.liveRestore or false);
          message = "services.canon.dockerRunner: `docker swarm init` fails while live-restore is on (nixpkgs' default); set virtualisation.docker.liveRestore = false.";
        }
      ];

      # A single-node swarm, initialised once: a no-op when the engine already is in one.
      systemd.services.canon-swarm-init = {
        description = "canon: a single-node Docker swarm for the docker runner";
        wantedBy = [ "multi-user.target" ];
        after = [ "docker.service" ];
        requires = [ "docker.service" ];
        path = [ config.virtualisation.docker.package or pkgs.docker ];
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
        };
        script = ''
          state="$(docker info --format '{{.Swarm.LocalNodeState}}')"
          if [ "$state" != active ]; then
            docker swarm init --advertise-addr ${lib.escapeShellArgs [ canonCfg.swarmAdvertiseAddr ]}
          fi
        '';
      };
    })

    (mkIf listenerCfg.enable {
      assertions = [
        {
          assertion = listenerCfg.settings.enrollment != null || canonCfg.enrollment != null;
          message = "services.canon-listener needs an enrollment: set services.canon.enrollment (Nix data) or services.canon-listener.settings.enrollment (a file).";
        }
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
          StateDirectoryMode = stateDirMode;
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
          assertion = canonCfg.dockerRunner;
          message = "services.canon-sweep runs recipes with the docker runner: keep services.canon.dockerRunner on.";
        }
        {
          assertion = sweepCfg.enrollment != null || canonCfg.enrollment != null;
          message = "services.canon-sweep needs an enrollment: set services.canon.enrollment (Nix data) or services.canon-sweep.enrollment (a file).";
        }
      ];

      systemd.services.canon-sweep = {
        description = "canon weekly sweep";
        wants = [ "network-online.target" ];
        after = [
          "network-online.target"
          "docker.service"
          "canon-swarm-init.service"
        ];
        requires = [
          "docker.service"
          "canon-swarm-init.service"
        ];
        environment.HOME = defaultStateDir;
        serviceConfig = {
          Type = "oneshot";
          ExecStart = lib.escapeShellArgs (
            [
              "${sweepCfg.package}/bin/canon-plugin"
              "sweep"
              "--inline"
              "--config"
              "${enrollmentFor sweepCfg.enrollment}"
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
          StateDirectoryMode = stateDirMode;
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
          UMask = stateUMask;
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
