//! `canon-plugin recipe plan` as an operator runs it, on fixtures modelled on real recipes: the
//! bonfire-shaped fixture (`fixtures/recipe-multifile`: `COMPOSE_FILE` built by expansion in
//! `.env.sample`, `length=128`, the timeout label, backupbot hooks in map form) and the
//! single-file fixture (`fixtures/recipe`: list-form labels), each test changing one thing and
//! checking one rule. The plan is the docker runner's own (`recipe::plan`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use canon_testkit::git::{git, hermetic};
use canon_testkit::workspace;
use serde_json::json;

fn canon(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_canon-plugin"));
    hermetic(&mut c)
        .arg("recipe")
        .arg("plan")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("CANON_MIRROR_TOKEN")
        .env_remove("PLUGIN_MIRROR_TOKEN")
        .env_remove("TIMEOUT")
        .env_remove("ENABLE_BACKUPS");
    c.output().expect("canon-plugin runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs the plan and returns its JSON; panics unless it exits 0.
fn plan_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = canon(&all);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

/// Runs the plan and returns its error; panics unless it exits 1 and prints nothing on stdout.
fn plan_error(args: &[&str]) -> String {
    let out = canon(args);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stdout, "");
    stderr
}

/// A copy of `fixtures/<name>` in a temp dir, each file passed through `edit(file, text)`.
fn fixture(name: &str, edit: impl Fn(&str, String) -> String) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let src = workspace::root().join("fixtures").join(name);
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let file = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        std::fs::write(dir.join(&file), edit(&file, text)).unwrap();
    }
    (tmp, dir)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The bonfire-shaped fixture's plan, as the JSON documents it.
fn bonfire_plan(stack: &str) -> serde_json::Value {
    json!({
        "version": "1.0.0+0.1.0",
        "compose_files": ["compose.yml", "compose.postgres.yml"],
        "timeout": {"seconds": 240, "source": "label"},
        "secrets": [
            {"key": "app_key", "name": format!("{stack}_app_key_v1"), "version": "v1", "length": 128,
             "charset": "default", "source": "generated"},
            {"key": "db_password", "name": format!("{stack}_db_password_v1"), "version": "v1", "length": null,
             "charset": "default", "source": "generated"},
        ],
        "notes": [],
        "policy": [],
        "backup": [{
            "service": "db",
            "volumes": [{"name": "db-data", "path": "backup.sql"}],
            "pre_hook": "/pg_backup.sh backup",
            "post_hook": null,
            "restore_pre_hook": null,
            "restore_post_hook": "/pg_backup.sh restore",
        }],
        "routes": [{
            "service": "app",
            "router": stack,
            "hosts": [format!("{stack}.canon.localhost")],
            "path_prefix": null,
            "port": 8080,
        }],
        "lint": [],
        "lint_skipped": [],
    })
}

#[test]
fn a_lint_error_prints_the_plan_with_its_findings_and_exits_1() {
    let (_tmp, dir) = fixture("recipe-multifile", |file, text| match file {
        "compose.yml" => text.replace("        - \"traefik.enable=true\"\n", ""),
        _ => text,
    });
    let out = canon(&["--json", "--dir", s(&dir)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["lint"][0]["rule"], "traefik-enabled");
    assert_eq!(plan["lint"][0]["level"], "error");
    assert!(
        stderr.contains("error: lint: error [traefik-enabled]: the `app` service has no deploy label traefik.enable=true"),
        "{stderr}"
    );
    let out = canon(&["--dir", s(&dir)]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("lint:           error [traefik-enabled]"),
        "{stdout}"
    );
}

#[test]
fn an_empty_version_label_is_as_red_as_a_missing_one() {
    let (_tmp, dir) = fixture("recipe-multifile", |file, text| match file {
        "compose.yml" => text.replace(".version=1.0.0+0.1.0", ".version="),
        _ => text,
    });
    let err = plan_error(&["--dir", s(&dir)]);
    assert!(
        err.contains("the label coop-cloud.plan.version is empty"),
        "{err}"
    );
}

#[test]
fn the_bonfire_shaped_fixture_plans_exactly_its_files_timeout_secrets_and_backup() {
    let dir = workspace::root().join("fixtures/recipe-multifile");
    assert_eq!(plan_json(&["--dir", s(&dir)]), bonfire_plan("plan"));
}

#[test]
fn secret_and_volume_names_use_the_stack_asked_for() {
    let dir = workspace::root().join("fixtures/recipe-multifile");
    assert_eq!(
        plan_json(&["--dir", s(&dir), "--stack", "cold-x"]),
        bonfire_plan("cold-x")
    );
    let out = canon(&["--dir", s(&dir), "--stack", "Not A Stack"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_text_plan_says_the_same_in_lines() {
    let dir = workspace::root().join("fixtures/recipe-multifile");
    let out = canon(&["--dir", s(&dir)]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    for line in [
        "version:        1.0.0+0.1.0",
        "compose files:  compose.yml compose.postgres.yml",
        "timeout:        240s (source: label)",
        "app_key -> plan_app_key_v1 (v1, length=128, charset default)",
        "db_password -> plan_db_password_v1 (v1, 32 characters (no length= given), charset default)",
        "db: volumes db-data (path backup.sql); backupbot.backup.pre-hook `/pg_backup.sh backup`; backupbot.restore.post-hook `/pg_backup.sh restore`",
    ] {
        assert!(stdout.contains(line), "{line:?} in\n{stdout}");
    }
}

#[test]
fn the_single_file_fixture_plans_list_form_labels_and_the_default_timeout() {
    let dir = workspace::root().join("fixtures/recipe");
    let plan = plan_json(&["--dir", s(&dir)]);
    assert_eq!(plan["compose_files"], json!(["compose.yml"]));
    assert_eq!(
        plan["timeout"],
        json!({"seconds": 300, "source": "default"})
    );
    assert_eq!(
        plan["secrets"],
        json!([{"key": "app_key", "name": "plan_app_key_v1", "version": "v1", "length": 32,
                "charset": "default", "source": "generated"}])
    );
    assert_eq!(
        plan["backup"],
        json!([{"service": "app", "volumes": [{"name": "data", "path": null}],
                "pre_hook": null, "post_hook": null,
                "restore_pre_hook": null, "restore_post_hook": null}])
    );
}

#[test]
fn an_interpolated_false_turns_backups_off() {
    let (_tmp, dir) = fixture("recipe-multifile", |file, text| {
        if file == ".env.sample" {
            text + "ENABLE_BACKUPS=false\n"
        } else {
            text
        }
    });
    assert_eq!(plan_json(&["--dir", s(&dir)])["backup"], json!([]));
}

#[test]
fn list_form_labels_exclude_a_volume_and_keep_the_others_whole() {
    let (_tmp, dir) = fixture("recipe-multifile", |file, text| {
        if file != "compose.postgres.yml" {
            return text;
        }
        text.replace(
            "      - db-data:/var/lib/postgresql/data\n",
            "      - db-data:/var/lib/postgresql/data\n      - db-cache:/cache\n      - db-logs:/logs\n",
        )
        .replace(
            r#"        backupbot.backup: ${ENABLE_BACKUPS:-true}
        backupbot.backup.pre-hook: "/pg_backup.sh backup"
        backupbot.backup.volumes.db-data.path: "backup.sql"
        backupbot.restore.post-hook: '/pg_backup.sh restore'
"#,
            r#"        - "backupbot.backup=${ENABLE_BACKUPS:-true}"
        - "backupbot.backup.volumes.db-cache=false"
        - "backupbot.restore.pre-hook=echo restoring"
"#,
        )
        .replace("volumes:\n  db-data:\n", "volumes:\n  db-data:\n  db-cache:\n  db-logs:\n")
    });
    assert_eq!(
        plan_json(&["--dir", s(&dir)])["backup"],
        json!([{"service": "db",
                "volumes": [{"name": "db-data", "path": null}, {"name": "db-logs", "path": null}],
                "pre_hook": null, "post_hook": null,
                "restore_pre_hook": "echo restoring", "restore_post_hook": null}])
    );
}

#[test]
fn a_backup_label_naming_a_volume_the_service_does_not_mount_is_red() {
    let (_tmp, dir) = fixture("recipe-multifile", |file, text| {
        if file == "compose.postgres.yml" {
            text.replace("volumes.db-data.path", "volumes.db_data.path")
        } else {
            text
        }
    });
    let err = plan_error(&["--dir", s(&dir)]);
    assert!(
        err.contains("backupbot.backup.volumes.db_data.path names the volume `db_data`"),
        "{err}"
    );
}

#[test]
fn a_secret_whose_name_has_no_version_is_red_naming_it_and_its_variable() {
    let (_tmp, dir) = fixture("recipe-multifile", |file, text| {
        if file == ".env.sample" {
            text.replace("SECRET_DB_PASSWORD_VERSION=v1\n", "")
        } else {
            text
        }
    });
    let err = plan_error(&["--dir", s(&dir)]);
    assert!(
        err.contains("secret `db_password`: its name `plan_db_password_` ends in `_`")
            && err.contains("set SECRET_DB_PASSWORD_VERSION in the app env"),
        "{err}"
    );
}

#[test]
fn a_secret_modifier_canon_does_not_know_is_a_note_of_the_plan() {
    let (_tmp, dir) = fixture("recipe-multifile", |file, text| {
        if file == ".env.sample" {
            text.replace("# length=128", "# length=128 charset=special colour=red")
        } else {
            text
        }
    });
    let plan = plan_json(&["--dir", s(&dir)]);
    let notes: Vec<&str> = plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].contains("SECRET_APP_KEY_VERSION: `charset=special` is not one canon knows"));
    assert!(notes[1].contains("unknown secret modifier `colour=red`"));
    let out = canon(&["--dir", s(&dir)]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("notes:          secret `app_key`"),
        "{stdout}"
    );
}

#[test]
fn a_checkout_without_env_sample_is_red_saying_so() {
    let (_tmp, dir) = fixture("recipe-multifile", |_, text| text);
    std::fs::create_dir(dir.join("deploy")).unwrap();
    std::fs::rename(dir.join(".env.sample"), dir.join("deploy/.env.sample")).unwrap();
    let err = plan_error(&["--dir", s(&dir)]);
    assert!(
        err.contains(".env.sample: missing: `abra app new` copies")
            && err.contains("found deploy/.env.sample"),
        "{err}"
    );
}

#[test]
fn a_required_variable_that_is_missing_is_red_with_the_recipes_message() {
    let (_tmp, dir) = fixture("recipe-multifile", |file, text| {
        if file == "compose.yml" {
            text.replace(
                "        - \"traefik.enable=true\"",
                "        - \"traefik.enable=true\"\n        - \"canon.db=${DB_HOST:?DB_HOST must be set for this recipe}\"",
            )
        } else {
            text
        }
    });
    let err = plan_error(&["--dir", s(&dir)]);
    assert!(err.contains("DB_HOST must be set for this recipe"), "{err}");
}

#[test]
fn a_timeout_label_that_is_no_number_is_red_naming_it() {
    let (_tmp, dir) = fixture("recipe-multifile", |file, text| {
        if file == ".env.sample" {
            text + "TIMEOUT=five minutes\n"
        } else {
            text
        }
    });
    let err = plan_error(&["--dir", s(&dir)]);
    assert!(
        err.contains("coop-cloud.plan.timeout=\"five minutes\""),
        "{err}"
    );
}

#[test]
fn the_version_label_must_be_there_and_name_the_tag() {
    let dir = workspace::root().join("fixtures/recipe-multifile");
    let plan = plan_json(&["--dir", s(&dir), "--tag", "1.0.0+0.1.0"]);
    assert_eq!(plan["version"], "1.0.0+0.1.0");
    let err = plan_error(&["--dir", s(&dir), "--tag", "1.1.0+0.1.0"]);
    assert!(err.contains("but the tag is 1.1.0+0.1.0"), "{err}");
    let (_tmp, unlabelled) = fixture("recipe-multifile", |file, text| {
        if file == "compose.yml" {
            text.replace(
                "        - \"coop-cloud.${STACK_NAME}.version=1.0.0+0.1.0\"\n",
                "",
            )
        } else {
            text
        }
    });
    let err = plan_error(&["--dir", s(&unlabelled)]);
    assert!(
        err.contains("no service carries the label coop-cloud.plan.version"),
        "{err}"
    );
}

#[test]
fn env_values_of_secret_settings_never_appear() {
    let value = "hunter2-never-printed";
    let (_tmp, dir) = fixture("recipe-multifile", |file, text| {
        if file == ".env.sample" {
            format!("{text}SMTP_PASSWORD={value}\nSECRET_SMTP_PASSWORD_VERSION=v1\n")
        } else {
            text
        }
    });
    for args in [vec!["--dir", s(&dir)], vec!["--json", "--dir", s(&dir)]] {
        let out = canon(&args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(
            !stdout.contains(value) && !stderr.contains(value),
            "{stdout}{stderr}"
        );
    }
}

#[test]
fn an_enrolled_recipes_tag_is_checked_out_of_its_mirror_with_the_enrollments_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    git(&mirror, &["init", "-q", "-b", "main"]);
    let src = workspace::root().join("fixtures/recipe-multifile");
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), mirror.join(entry.file_name())).unwrap();
    }
    git(&mirror, &["add", "-A"]);
    git(
        &mirror,
        &["commit", "-q", "-m", "chore: publish 1.0.0+0.1.0 release"],
    );
    git(&mirror, &["tag", "-a", "1.0.0+0.1.0", "-m", "1.0.0+0.1.0"]);
    let config = tmp.path().join("enrollment.yml");
    std::fs::write(
        &config,
        format!(
            "recipes:\n  - name: multi\n    upstream: {}/upstream\n    mirror: {}\n    deploy_timeout: 90\n",
            tmp.path().display(),
            mirror.display()
        ),
    )
    .unwrap();
    let args = |tag: &'static str| {
        vec![
            "--config".to_string(),
            s(&config).to_string(),
            "--recipe".to_string(),
            "multi".to_string(),
            "--tag".to_string(),
            tag.to_string(),
        ]
    };
    let a = args("1.0.0+0.1.0");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let plan = plan_json(&a);
    let mut want = bonfire_plan("plan");
    want["timeout"] = json!({"seconds": 90, "source": "enrollment"});
    assert_eq!(plan, want);

    let a = args("9.9.9+0.1.0");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let err = plan_error(&a);
    assert!(err.contains("refs/tags/9.9.9+0.1.0"), "{err}");
}

#[test]
fn a_docker_socket_mount_is_red_until_the_enrollment_allows_it() {
    let (tmp, dir) = fixture("recipe-multifile", |file, text| {
        if file == "compose.yml" {
            text.replacen(
                "    volumes:\n",
                "    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock:ro\n",
                1,
            )
        } else {
            text
        }
    });
    let enroll = |host_access: &str| {
        let config = tmp.path().join("enrollment.yml");
        std::fs::write(
            &config,
            format!("recipes:\n  - name: multi\n    upstream: /u\n    mirror: /m\n{host_access}"),
        )
        .unwrap();
        config
    };
    let finding = "service `app`: docker_socket /var/run/docker.sock:/var/run/docker.sock:ro";

    let err = plan_error(&["--dir", s(&dir)]);
    assert!(err.contains("deploy policy refuses"), "{err}");
    assert!(err.contains(finding), "{err}");
    let config = enroll("    host_access: [/srv/other, host_network]\n");
    let err = plan_error(&[
        "--dir",
        s(&dir),
        "--config",
        s(&config),
        "--recipe",
        "multi",
    ]);
    assert!(err.contains(finding), "{err}");

    let config = enroll("    host_access: [/var/run/docker.sock]\n");
    let plan = plan_json(&[
        "--dir",
        s(&dir),
        "--config",
        s(&config),
        "--recipe",
        "multi",
    ]);
    assert_eq!(
        plan["policy"],
        json!([{"service": "app", "kind": "docker_socket",
                "detail": "/var/run/docker.sock:/var/run/docker.sock:ro", "allowed": true}])
    );
    assert_eq!(
        plan["notes"],
        json!([format!("host access allowed by the enrollment: {finding}")])
    );
}

#[test]
fn the_routes_show_each_routers_hosts_path_and_port() {
    let (_tmp, dir) = fixture("recipe", |file, text| match file {
        "compose.yml" => text.replace(
            "rule=Host(`${DOMAIN}`)",
            "rule=(Host(`${DOMAIN}`) || Host(`www.${DOMAIN}`)) && PathPrefix(`/app`)",
        ),
        _ => text,
    });
    let plan = plan_json(&["--dir", s(&dir)]);
    assert_eq!(
        plan["routes"],
        json!([{"service": "app", "router": "plan",
                "hosts": ["plan.canon.localhost", "www.plan.canon.localhost"],
                "path_prefix": "/app", "port": 8080}])
    );
    let out = canon(&["--dir", s(&dir)]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "routes:         app router plan: plan.canon.localhost, www.plan.canon.localhost/app -> port 8080"
        ),
        "{stdout}"
    );
}

#[test]
fn a_route_canon_cannot_follow_is_red_naming_the_label() {
    let (_tmp, dir) = fixture("recipe", |file, text| match file {
        "compose.yml" => text.replace("rule=Host(`${DOMAIN}`)", "rule=Host(`${DOMAIN}`"),
        _ => text,
    });
    let err = plan_error(&["--dir", s(&dir)]);
    assert!(
        err.contains("routing: service `app`: cannot read the router rule `traefik.http.routers.plan.rule=Host(`plan.canon.localhost`"),
        "{err}"
    );
    let (_tmp, dir) = fixture("recipe", |file, text| match file {
        "compose.yml" => text.replace("server.port=8080", "server.port=http"),
        _ => text,
    });
    let err = plan_error(&["--dir", s(&dir)]);
    assert!(
        err.contains("routing: service `app`, router `plan`: label traefik.http.services.plan.loadbalancer.server.port=http is no port number"),
        "{err}"
    );
}

#[test]
fn bad_usage_exits_two_with_the_reason() {
    let out = canon(&[]);
    assert_eq!(out.status.code(), Some(2));
    let out = canon(&["--tag", "1.0.0+0.1.0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("--config"), "{}", text(&out).1);
    let out = canon(&["--dir", "/nonexistent/recipe"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("is not a folder"), "{}", text(&out).1);
}
