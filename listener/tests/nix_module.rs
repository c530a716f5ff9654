//! The NixOS packaging stays in step with the listener: every `CANON_*` variable the listener
//! reads ([`canon_listener::config::ENV_VARS`]) is in `nix/listener-env.nix` (and so an option of
//! `services.canon-listener`, or a secret read from its `environmentFile`) and the reverse; the
//! module evaluates (against a small stand-in for nixpkgs' `lib`, since no nixpkgs is available
//! offline) into the unit, timer and environment an operator expects; and every `.nix` file of
//! the repository parses.
//!
//! Needs `nix-instantiate` (Debian's `nix-bin`, installed by scripts/setup-system.sh); without
//! it these tests fail with that message.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use canon_listener::config::ENV_VARS;
use canon_testkit::workspace;
use serde_json::Value;

/// Runs `nix-instantiate` with `args` and returns its stdout; panics with stderr on failure.
fn nix_instantiate(args: &[&str]) -> String {
    let mut cmd = Command::new("nix-instantiate");
    cmd.args(args)
        .current_dir(workspace::root())
        // Debian's nix-bin expects a nixbld group it does not create; evaluation needs none.
        .env("NIX_CONFIG", "build-users-group =")
        .env("NIX_PATH", "")
        .env("HOME", std::env::temp_dir());
    let child = match cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "nix-instantiate is required for the Nix packaging tests (Debian package nix-bin; \
             scripts/setup-system.sh installs it): {e}"
        ),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("nix-instantiate finishes within 60 s")
        .expect("nix-instantiate runs");
    assert!(
        out.status.success(),
        "nix-instantiate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("nix-instantiate prints UTF-8")
}

fn eval_json(args: &[&str]) -> Value {
    let mut all = vec!["--eval", "--strict", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&nix_instantiate(&all)).expect("nix-instantiate --json prints JSON")
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a repository folder") {
        let path = entry.expect("read a folder entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "target" | ".git" | "canon-state") {
                nix_files(&path, out);
            }
        } else if name.ends_with(".nix") {
            out.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let mut files = Vec::new();
    nix_files(&workspace::root(), &mut files);
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(workspace::root())
                .expect("under the root")
                .display()
                .to_string()
        })
        .collect();
    for want in [
        "flake.nix",
        "nix/default.nix",
        "nix/package.nix",
        "nix/module.nix",
        "nix/listener-env.nix",
        "nix/images.nix",
    ] {
        assert!(names.contains(want), "{want} is missing; found {names:?}");
    }
    for file in &files {
        let text = nix_instantiate(&["--parse", file.to_str().expect("UTF-8 path")]);
        assert!(
            !text.trim().is_empty(),
            "{} parsed to nothing",
            file.display()
        );
    }
}

#[test]
fn every_listener_variable_has_a_module_setting_and_the_reverse() {
    let table = eval_json(&["nix/listener-env.nix"]);
    let table = table
        .as_object()
        .expect("listener-env.nix is an attribute set");
    let in_module: BTreeSet<&str> = table
        .values()
        .map(|e| e["env"].as_str().expect("every entry names its variable"))
        .collect();
    let in_listener: BTreeSet<&str> = ENV_VARS.iter().copied().collect();
    let missing: Vec<_> = in_listener.difference(&in_module).collect();
    let unknown: Vec<_> = in_module.difference(&in_listener).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "nix/listener-env.nix is out of step with the listener: variables with no module \
         setting: {missing:?}; module settings the listener does not read: {unknown:?}"
    );
    assert_eq!(table.len(), ENV_VARS.len(), "one entry per variable");

    for (name, e) in table {
        let env = e["env"].as_str().unwrap_or_default();
        let secret = e["secret"].as_bool().unwrap_or(false);
        // Tokens and webhook secrets must never become options: option values land in the
        // world-readable Nix store.
        let looks_secret =
            env.ends_with("_TOKEN") || env.ends_with("_SECRETS") || env.ends_with("_SECRET");
        assert_eq!(secret, looks_secret, "{name} ({env}): secret = {secret}");
        assert!(
            e["description"].as_str().is_some_and(|d| d.len() > 10),
            "{name} has a description"
        );
        if !secret {
            let ty = e["type"].as_str().unwrap_or_default();
            assert!(
                ["str", "path", "int", "listOfStr"].contains(&ty),
                "{name}: unknown type {ty:?}"
            );
        }
    }
}

/// A stand-in for the handful of nixpkgs `lib` functions the module uses, enough to evaluate
/// its `options` and `config` without nixpkgs: options become plain attribute sets, `mkIf`
/// and `mkMerge` merge eagerly (lists concatenated).
const EVAL_MODULE: &str = r#"
let
  merge = a: b:
    a // builtins.mapAttrs (n: v:
      if builtins.hasAttr n a && builtins.isAttrs v && builtins.isAttrs a.${n} then merge a.${n} v
      else if builtins.hasAttr n a && builtins.isList v && builtins.isList a.${n} then a.${n} ++ v
      else v) b;
  lib = rec {
    mkOption = o: o // { _option = true; };
    mkEnableOption = d: mkOption { default = false; description = d; type = "bool"; };
    mkIf = cond: v: if cond then v else { };
    mkMerge = builtins.foldl' merge { };
    types = {
      str = "str"; path = "path"; package = "package"; bool = "bool"; attrs = "attrs";
      ints = { positive = "positive int"; };
      listOf = t: "list of ${t}"; nullOr = t: "null or ${t}"; enum = l: "one of";
    };
    literalExpression = e: e;
    optional = c: v: if c then [ v ] else [ ];
    filterAttrs = f: s: builtins.listToAttrs (builtins.filter (x: f x.name x.value)
      (map (n: { name = n; value = s.${n}; }) (builtins.attrNames s)));
    mapAttrs = builtins.mapAttrs;
    mapAttrsToList = f: s: map (n: f n s.${n}) (builtins.attrNames s);
    nameValuePair = name: value: { inherit name value; };
    mapAttrs' = f: s: builtins.listToAttrs (mapAttrsToList f s);
    concatStringsSep = builtins.concatStringsSep;
    escapeShellArgs = l: builtins.concatStringsSep " " (map (a: "'${a}'") l);
  };
  pkgs = { canon = "/nix/store/0000-canon"; };
  module = import ./nix/module.nix { inherit config lib pkgs; };
  defaults = builtins.mapAttrs (n: o: o.default or null) module.options.services.canon-listener.settings;
  config = {
    virtualisation.docker = { enable = true; liveRestore = @LIVE_RESTORE@; package = "/nix/store/0000-docker"; };
    services.canon = {
      enrollment = {
        forge = { upstream = "https://git.coopcloud.tech"; mirror = "https://git.example.org"; };
        recipes = [
          { name = "custom-html"; upstream = "coop-cloud/custom-html"; mirror = "recipe-maintainers/custom-html"; deploy_timeout = 600; }
        ];
      };
      dockerRunner = true;
      swarmAdvertiseAddr = "127.0.0.1";
    };
    services.canon-listener = {
      enable = true;
      package = "/nix/store/0000-canon";
      environmentFile = "/run/secrets/canon-listener.env";
      settings = defaults // {
        droneServer = "https://drone.example";
        droneRepo = "canon/ci";
        workers = 3;
      };
    };
    services.canon-sweep = {
      enable = true;
      package = "/nix/store/0000-canon";
      enrollment = null;
      stateDir = "/var/lib/canon";
      startAt = "Sun *-*-* 03:00:00 UTC";
      extraArgs = [ "--jobs" "2" ];
      environmentFile = null;
    };
  };
in {
  settings = builtins.attrNames module.options.services.canon-listener.settings;
  required = builtins.attrNames (lib.filterAttrs (n: o: !(o ? default)) module.options.services.canon-listener.settings);
  listener = module.config.systemd.services.canon-listener;
  sweep = module.config.systemd.services.canon-sweep;
  timer = module.config.systemd.timers.canon-sweep;
  user = module.config.users.users.canon;
  assertions = map (a: a.assertion) module.config.assertions;
  etc = module.config.environment.etc."canon/enrollment.yml";
  swarm = module.config.systemd.services.canon-swarm-init;
  tmpfiles = module.config.systemd.tmpfiles.rules;
  options = {
    canon = builtins.attrNames module.options.services.canon;
    listener = builtins.attrNames module.options.services.canon-listener;
    sweep = builtins.attrNames module.options.services.canon-sweep;
  };
}
"#;

/// Evaluates the module with `virtualisation.docker.liveRestore` set to `live_restore`.
fn eval_module(live_restore: bool) -> Value {
    eval_json(&[
        "--expr",
        &EVAL_MODULE.replace(
            "@LIVE_RESTORE@",
            if live_restore { "true" } else { "false" },
        ),
    ])
}

#[test]
fn the_module_evaluates_to_a_hardened_listener_and_a_weekly_persistent_sweep() {
    let v = eval_module(false);
    let table = eval_json(&["nix/listener-env.nix"]);
    let table = table.as_object().expect("an attribute set");

    // Options: every plain entry of the table, under the same name.
    let settings: BTreeSet<&str> = v["settings"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let plain: BTreeSet<&str> = table
        .iter()
        .filter(|(_, e)| !e["secret"].as_bool().unwrap_or(false))
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(settings, plain);
    let required: Vec<&str> = v["required"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, ["droneRepo", "droneServer"]);

    // The environment: set options only, each under its variable; no secret.
    let env = v["listener"]["environment"]
        .as_object()
        .expect("environment");
    assert_eq!(env["CANON_BIND"], "127.0.0.1:8088");
    assert_eq!(env["CANON_STATE_DIR"], "/var/lib/canon");
    assert_eq!(env["CANON_ENROLLMENT"], "/etc/canon/enrollment.yml");
    assert_eq!(env["CANON_DRONE_SERVER"], "https://drone.example");
    assert_eq!(env["CANON_DRONE_REPO"], "canon/ci");
    assert_eq!(env["CANON_WORKERS"], "3");
    assert_eq!(env.len(), 6, "unset options stay unset: {env:?}");
    for var in env.keys() {
        assert!(ENV_VARS.contains(&var.as_str()), "{var} is not read");
        assert!(!var.ends_with("_TOKEN") && !var.ends_with("_SECRETS"));
    }

    let unit = &v["listener"]["serviceConfig"];
    assert_eq!(
        unit["ExecStart"],
        "/nix/store/0000-canon/bin/canon-listener"
    );
    assert_eq!(unit["StateDirectory"], "canon");
    assert_eq!(unit["User"], "canon");
    assert_eq!(
        unit["EnvironmentFile"],
        serde_json::json!(["/run/secrets/canon-listener.env"])
    );
    for (key, want) in [
        ("NoNewPrivileges", true),
        ("PrivateTmp", true),
        ("ProtectHome", true),
        ("MemoryDenyWriteExecute", true),
    ] {
        assert_eq!(unit[key], want, "{key}");
    }
    assert_eq!(unit["LimitNOFILE"], 65536, "room above the connection cap");
    assert_eq!(unit["ProtectSystem"], "strict");
    assert_eq!(unit["CapabilityBoundingSet"], "");
    assert_eq!(unit["ReadWritePaths"], serde_json::json!([]));

    let sweep = &v["sweep"]["serviceConfig"];
    assert_eq!(sweep["Type"], "oneshot");
    assert_eq!(
        sweep["ExecStart"],
        "'/nix/store/0000-canon/bin/canon-plugin' 'sweep' '--inline' '--config' \
         '/etc/canon/enrollment.yml' '--state-dir' '/var/lib/canon' \
         '--listener-url' 'http://127.0.0.1:8088' '--jobs' '2'"
    );
    assert_eq!(sweep["SupplementaryGroups"], serde_json::json!(["docker"]));
    assert_eq!(v["timer"]["timerConfig"]["Persistent"], true);
    assert_eq!(
        v["timer"]["timerConfig"]["OnCalendar"],
        "Sun *-*-* 03:00:00 UTC"
    );
    assert_eq!(v["timer"]["wantedBy"], serde_json::json!(["timers.target"]));
    assert_eq!(v["user"]["isSystemUser"], true);
    assert_eq!(
        v["assertions"],
        serde_json::json!([true, true, true, true, true, true])
    );
}

#[test]
fn the_module_writes_the_enrollment_from_nix_data_and_shares_the_state_dir_and_a_swarm() {
    let v = eval_module(false);
    // One file for the listener, the sweep and the Drone steps, read as canon reads any
    // enrollment.
    let text = v["etc"]["text"].as_str().expect("the enrollment's text");
    let enrollment =
        canon_shared::recipe::Enrollment::parse(Path::new("/etc/canon/enrollment.yml"), text)
            .expect("the rendered enrollment reads");
    let name = canon_shared::recipe::RecipeName::parse("custom-html").unwrap();
    assert_eq!(
        enrollment.get(&name).expect("enrolled").deploy_timeout_secs,
        Some(600)
    );
    assert_eq!(
        v["listener"]["environment"]["CANON_ENROLLMENT"],
        "/etc/canon/enrollment.yml"
    );
    assert!(
        v["sweep"]["serviceConfig"]["ExecStart"]
            .as_str()
            .unwrap()
            .contains("'--config' '/etc/canon/enrollment.yml'"),
        "{}",
        v["sweep"]["serviceConfig"]["ExecStart"]
    );

    // The state dir: group canon, setgid, group-writable, before any writer starts; both units
    // keep it so and create files the other user can write.
    assert_eq!(
        v["tmpfiles"],
        serde_json::json!(["d /var/lib/canon 2770 canon canon -"])
    );
    for unit in ["listener", "sweep"] {
        let c = &v[unit]["serviceConfig"];
        assert_eq!(c["StateDirectoryMode"], "2770", "{unit}");
        assert_eq!(c["UMask"], "0007", "{unit}");
        assert_eq!(c["Group"], "canon", "{unit}");
    }

    // A single-node swarm, once, before the sweep.
    let script = v["swarm"]["script"].as_str().unwrap();
    assert!(
        script.contains("docker info --format '{{.Swarm.LocalNodeState}}'"),
        "{script}"
    );
    assert!(
        script.contains("docker swarm init --advertise-addr '127.0.0.1'"),
        "{script}"
    );
    assert_eq!(v["swarm"]["serviceConfig"]["RemainAfterExit"], true);
    assert!(v["sweep"]["requires"]
        .as_array()
        .unwrap()
        .contains(&Value::from("canon-swarm-init.service")));

    // nixpkgs turns live-restore on by default, and swarm mode refuses it.
    let live = eval_module(true);
    assert!(
        live["assertions"]
            .as_array()
            .unwrap()
            .contains(&Value::from(false)),
        "live-restore on fails an assertion: {}",
        live["assertions"]
    );
}

#[test]
fn every_module_option_is_in_the_operator_guide() {
    let v = eval_module(false);
    let guide = std::fs::read_to_string(workspace::root().join("docs/operator-guide.md")).unwrap();
    let mut missing = Vec::new();
    for (group, prefix) in [
        ("canon", "services.canon."),
        ("listener", "services.canon-listener."),
        ("sweep", "services.canon-sweep."),
    ] {
        for name in v["options"][group].as_array().unwrap() {
            let name = name.as_str().unwrap();
            if name == "settings" {
                continue; // one option per variable, held to the listener's list above
            }
            if !guide.contains(&format!("`{name}`"))
                && !guide.contains(&format!("`{prefix}{name}`"))
            {
                missing.push(format!("{prefix}{name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "options the operator guide does not name: {missing:?}"
    );
}

/// Evaluates `nix/images.nix` with stand-ins for dockerTools (an image is the attribute set it
/// was given) and the packages it takes, so the images' settings can be compared with the
/// Dockerfile's without nixpkgs.
const EVAL_IMAGES: &str = r#"
let
  images = import ./nix/images.nix {
    lib = { };
    dockerTools.buildLayeredImage = args: args;
    canon = { version = "0.0.0-test"; outPath = "/nix/store/0000-canon"; };
    docker-client = "/nix/store/0000-docker";
    pkgsStatic.busybox = "/nix/store/0000-busybox";
    cacert = "/nix/store/0000-cacert";
    runCommand = name: env: script: "/nix/store/0000-${name}";
  };
  strip = i: { inherit (i) name tag config; contents = map toString i.contents; };
in builtins.mapAttrs (n: strip) images
"#;

/// Returns the `ENV`, `USER`, `WORKDIR` and `ENTRYPOINT` of the Dockerfile's `target` stage.
fn dockerfile_stage(target: &str) -> (Vec<String>, Option<String>, String, Vec<String>) {
    let text = std::fs::read_to_string(workspace::root().join("Dockerfile")).unwrap();
    let stage = text
        .split("FROM scratch AS ")
        .find(|s| s.starts_with(target))
        .unwrap_or_else(|| panic!("the Dockerfile has no stage {target}"));
    let mut env = Vec::new();
    let mut user = None;
    let mut workdir = String::new();
    let mut entrypoint = Vec::new();
    let mut in_env = false;
    for line in stage.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("ENV ") {
            in_env = true;
            env.push(rest.trim_end_matches(" \\").trim().to_string());
        } else if in_env && !line.is_empty() && !line.starts_with('#') && line.contains('=') {
            env.push(line.trim_end_matches(" \\").trim().to_string());
        } else {
            in_env = false;
        }
        if let Some(rest) = line.strip_prefix("USER ") {
            user = Some(rest.to_string());
        }
        if let Some(rest) = line.strip_prefix("WORKDIR ") {
            workdir = rest.to_string();
        }
        if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            entrypoint = serde_json::from_str(rest).unwrap();
        }
    }
    (env, user, workdir, entrypoint)
}

#[test]
fn the_flakes_images_run_as_the_dockerfiles_do_under_the_release_version_tag() {
    let dir = tempfile::tempdir().unwrap();
    let expr = dir.path().join("images.nix");
    std::fs::write(
        &expr,
        EVAL_IMAGES.replace("./nix/", &format!("{}/nix/", workspace::root().display())),
    )
    .unwrap();
    let images = eval_json(&[expr.to_str().unwrap()]);
    for (attr, name) in [
        ("canon-plugin-image", "canon-plugin"),
        ("canon-listener-image", "canon-listener"),
    ] {
        let image = &images[attr];
        assert_eq!(image["name"], name, "{attr}");
        assert_eq!(
            image["tag"], "0.0.0-test",
            "{attr} carries the release version"
        );
        let (env, user, workdir, entrypoint) = dockerfile_stage(name);
        let config = &image["config"];
        let nix_env: Vec<String> = config["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(nix_env, env, "{attr}: the Dockerfile's ENV");
        assert_eq!(
            config["User"].as_str().map(str::to_string),
            user,
            "{attr}: USER"
        );
        assert_eq!(config["WorkingDir"], workdir.as_str(), "{attr}: WORKDIR");
        let nix_entry: Vec<String> = serde_json::from_value(config["Entrypoint"].clone()).unwrap();
        assert_eq!(nix_entry, entrypoint, "{attr}: ENTRYPOINT");
        assert_eq!(
            config["Labels"]["org.opencontainers.image.licenses"],
            "AGPL-3.0-or-later"
        );
    }
    let plugin = images["canon-plugin-image"]["contents"].to_string();
    for want in ["docker", "busybox", "canon-plugin-bin"] {
        assert!(plugin.contains(want), "canon-plugin holds {want}: {plugin}");
    }
}
