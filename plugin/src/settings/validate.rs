//! Validation: [`Settings::parse`] turns the raw environment and flags into [`Settings`],
//! collecting every problem before it gives up, so an operator fixes a pipeline in one round.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use canon_shared::gate::TestedRef;
use canon_shared::recipe::RecipeName;
use canon_shared::secret::Secret;
use canon_shared::state::LockWait;

use super::environment::unset_if_empty;
use super::values::{
    parse_bool, parse_commit, parse_duration, parse_env_items, parse_list, parse_size,
};
use super::{ClaimedCommit, Environment, Mode, RawSettings, RunnerKind, Settings, SettingsError};

impl Settings {
    /// Validates raw settings. `cli` are the `run` subcommand's flags (they win over `PLUGIN_*`);
    /// `forced` is the mode a subcommand implies. `cwd` resolves the default report path when
    /// `DRONE_WORKSPACE` is unset. Every problem is reported at once.
    pub fn parse(
        env: &Environment,
        cli: Option<RawSettings>,
        forced: Option<Mode>,
        cwd: &Path,
    ) -> Result<Settings, SettingsError> {
        let raw = cli.unwrap_or_default().or(env.plugin.clone());
        let d = &env.drone;
        let mut problems = Vec::new();
        let drone_value = |v: &Option<String>| unset_if_empty(v.clone());

        let event = drone_value(&d.drone_build_event);
        // DRONE_TAG is set only for refs/tags/* builds; CANON_TAG is the listener's parameter.
        let setting_tag = raw.tag.clone();
        let canon_tag = drone_value(&d.canon_tag);
        let drone_tag = drone_value(&d.drone_tag);
        let tag = setting_tag
            .clone()
            .or(canon_tag.clone())
            .or(drone_tag.clone());
        if let (Some(a), Some(b)) = (&canon_tag, &drone_tag) {
            if setting_tag.is_none() && a != b {
                problems.push(format!(
                    "CANON_TAG={a} and DRONE_TAG={b} disagree; set `tag` to say which one to test"
                ));
            }
        }
        let git_ref = raw.git_ref.clone();

        let mode = match (forced, raw.mode.as_deref().map(str::trim)) {
            (Some(m), _) => Some(m),
            (None, Some("tag")) => Some(Mode::Tag),
            (None, Some("sweep")) => Some(Mode::Sweep),
            (None, Some(other)) => {
                problems.push(format!("`mode` must be tag or sweep, not {other:?}"));
                None
            }
            (None, None) => match event.as_deref() {
                Some("cron") => Some(Mode::Sweep),
                Some("tag") if tag.is_some() => Some(Mode::Tag),
                Some("custom") if tag.is_some() || git_ref.is_some() => Some(Mode::Tag),
                Some("tag") | Some("custom") => {
                    problems.push(format!(
                        "DRONE_BUILD_EVENT={} but no tag: set `tag` (or the CANON_TAG build parameter) or `ref`",
                        event.as_deref().unwrap_or_default()
                    ));
                    None
                }
                Some(other) => {
                    problems.push(format!(
                        "DRONE_BUILD_EVENT={other} does not pick a mode (tag and custom builds run tag mode, cron builds the sweep); set `mode`"
                    ));
                    None
                }
                None => {
                    problems.push(
                        "no mode: not a Drone build (DRONE_BUILD_EVENT is unset) and `mode` is unset; use `canon-plugin run` or `canon-plugin sweep`"
                            .into(),
                    );
                    None
                }
            },
        };

        let config = raw.config.clone().or(drone_value(&d.canon_enrollment));
        if config.is_none() {
            problems.push(
                "`config` (PLUGIN_CONFIG or --config) is required: the enrollment file".into(),
            );
        }
        let state_dir = raw
            .state_dir
            .clone()
            .or(drone_value(&d.canon_state_dir))
            .unwrap_or_else(|| "./canon-state".into());

        let recipe_given = raw.recipe.is_some() || drone_value(&d.canon_recipe).is_some();
        let recipe = match raw.recipe.clone().or(drone_value(&d.canon_recipe)) {
            Some(r) => match RecipeName::parse(r.trim()) {
                Ok(n) => Some(n),
                Err(e) => {
                    problems.push(format!("`recipe`: {e}"));
                    None
                }
            },
            None => None,
        };

        let drone_repo = raw.drone_repo.clone().or(drone_value(&d.drone_repo));
        let mut tested = None;
        let mut claimed_commits = Vec::new();
        if mode == Some(Mode::Tag) {
            if !recipe_given && drone_repo.is_none() {
                problems.push(
                    "`recipe` (PLUGIN_RECIPE, CANON_RECIPE or --recipe) is required in tag mode"
                        .into(),
                );
            }
            match (&tag, &git_ref) {
                (Some(_), Some(_)) => problems.push("give `tag` or `ref`, not both".into()),
                (None, None) => {
                    problems.push("tag mode needs `tag` (or CANON_TAG, DRONE_TAG) or `ref`".into())
                }
                (Some(t), None) => {
                    let t = t.trim();
                    if git2::Reference::is_valid_name(&format!("refs/tags/{t}")) {
                        tested = Some(TestedRef::Tag(t.to_string()));
                    } else {
                        problems.push(format!("`tag`: {t:?} is not a valid tag name"));
                    }
                }
                (None, Some(r)) => {
                    let r = r.trim();
                    let full = if r.starts_with("refs/") {
                        r.to_string()
                    } else {
                        format!("refs/heads/{r}")
                    };
                    if git2::Reference::is_valid_name(&full) {
                        tested = Some(TestedRef::Ref(r.to_string()));
                    } else {
                        problems.push(format!("`ref`: {r:?} is not a valid ref name"));
                    }
                }
            }
            let mut claim = |source: &'static str, value: Option<String>| {
                if let Some(v) = value {
                    match parse_commit(&v) {
                        Some(c) => claimed_commits.push(ClaimedCommit { source, commit: c }),
                        None => problems.push(format!(
                            "{source}: {:?} is not a full commit id (40 or 64 hex digits)",
                            v.trim()
                        )),
                    }
                }
            };
            claim("commit", raw.commit.clone());
            claim("CANON_COMMIT", drone_value(&d.canon_commit));
            // DRONE_COMMIT_SHA is the tag's commit only when this build is the tag's build.
            let tag_build = drone_tag.is_some() && tag == drone_tag && git_ref.is_none();
            if tag_build {
                claim("DRONE_COMMIT_SHA", drone_value(&d.drone_commit_sha));
            }
        }

        let mut flag = |name: &'static str, v: &Option<String>| -> bool {
            match v.as_deref().map(|s| parse_bool(name, s)) {
                None => false,
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    problems.push(e);
                    false
                }
            }
        };
        let quick = flag("quick", &raw.quick);
        let keep_work_dir = flag("keep_work_dir", &raw.keep_work_dir);
        let dry_run = flag("dry_run", &raw.dry_run);
        let inline = flag("inline", &raw.inline);

        let runner = match raw.runner.as_deref().map(str::trim) {
            Some("command") => Some(RunnerKind::Command),
            Some("docker") => Some(RunnerKind::Docker),
            Some("abra") => Some(RunnerKind::Abra),
            Some(other) => {
                problems.push(format!(
                    "`runner` must be command, docker or abra, not {other:?}"
                ));
                None
            }
            None if raw.command.is_some() => Some(RunnerKind::Command),
            None => Some(RunnerKind::Docker),
        };
        if let (Some(Mode::Tag), Some(runner)) = (mode, runner) {
            if runner == RunnerKind::Command && raw.command.is_none() {
                problems.push("the command runner needs `command` (the harness to run)".into());
            }
            if runner != RunnerKind::Command {
                for (name, v) in [
                    ("command", &raw.command),
                    ("promote_command", &raw.promote_command),
                ] {
                    if v.is_some() {
                        problems.push(format!(
                            "`{name}` is only used by the command runner, but `runner` is {}",
                            runner.as_str()
                        ));
                    }
                }
            }
        }

        let env_map = match raw.env.as_deref() {
            None => BTreeMap::new(),
            Some(v) => {
                match parse_list("env", v).and_then(|items| parse_env_items("env", &items)) {
                    Ok(m) => m,
                    Err(e) => {
                        problems.push(e);
                        BTreeMap::new()
                    }
                }
            }
        };

        let mut duration = |name: &'static str, v: &Option<String>, default: Duration| match v {
            None => default,
            Some(v) => parse_duration(name, v).unwrap_or_else(|e| {
                problems.push(e);
                default
            }),
        };
        let timeout = duration("timeout", &raw.timeout, Duration::from_secs(3600));
        let cleanup_after = duration(
            "cleanup_after",
            &raw.cleanup_after,
            Duration::from_secs(3 * 3600),
        );
        let lock_wait = duration("lock_wait", &raw.lock_wait, Duration::from_secs(1800));
        if timeout.is_zero() {
            problems.push("`timeout` must be longer than 0s".into());
        }

        let jobs = match raw.jobs.as_deref().map(str::trim) {
            None => None,
            Some(j) => match j.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    problems.push(format!("`jobs` must be a whole number above 0, not {j:?}"));
                    None
                }
            },
        };

        let min_free_bytes = match raw.min_free.as_deref() {
            None => None,
            Some(v) => match parse_size(v) {
                Some(n) => Some(n),
                None => {
                    problems.push(format!(
                        "`min_free` must be a size like 10G, 500M or 1048576, not {:?}",
                        v.trim()
                    ));
                    None
                }
            },
        };
        let idle_exit_code = match raw.idle_exit_code.as_deref().map(str::trim) {
            None => 0,
            Some(v) => v.parse::<u8>().unwrap_or_else(|_| {
                problems.push(format!(
                    "`idle_exit_code` must be a number from 0 to 255, not {v:?}"
                ));
                0
            }),
        };
        let mirror_forge = raw.mirror_forge.clone();
        if let Some(u) = &mirror_forge {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                problems.push(format!(
                    "mirror_forge {u:?}: must be the forge's http(s) base URL"
                ));
            }
        }
        let drone_server = raw.drone_server.clone().or_else(|| {
            match (
                drone_value(&d.drone_system_proto),
                drone_value(&d.drone_system_host),
            ) {
                (Some(proto), Some(host)) => Some(format!("{proto}://{host}")),
                _ => None,
            }
        });

        let workspace = drone_value(&d.drone_workspace)
            .map(PathBuf::from)
            .unwrap_or_else(|| cwd.to_path_buf());
        let report = raw.report.clone().map(|r| workspace.join(r));
        let known_hosts = raw.known_hosts.clone().map(|k| workspace.join(k));
        let work_dir = raw
            .work_dir
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);

        let build = drone_value(&d.drone_build_number).unwrap_or_else(|| {
            format!("local-{}", time::OffsetDateTime::now_utc().unix_timestamp())
        });

        if !problems.is_empty() {
            return Err(SettingsError { problems });
        }
        Ok(Settings {
            // `mode` is Some whenever no problem was recorded.
            mode: mode.unwrap_or(Mode::Tag),
            config: PathBuf::from(config.unwrap_or_default()),
            state_dir: PathBuf::from(state_dir),
            recipe,
            tested,
            claimed_commits,
            quick,
            // `runner` is Some whenever no problem was recorded.
            runner: runner.unwrap_or(RunnerKind::Docker),
            command: raw.command,
            promote_command: raw.promote_command,
            env: env_map,
            timeout,
            lock_wait: if lock_wait.is_zero() {
                LockWait::Fail
            } else {
                LockWait::Wait(lock_wait)
            },
            report,
            workspace,
            work_dir,
            keep_work_dir,
            upstream_token: raw.upstream_token.map(Secret::new),
            mirror_token: raw.mirror_token.map(Secret::new),
            ssh_key: raw.ssh_key.map(Secret::new),
            known_hosts,
            build,
            build_link: drone_value(&d.drone_build_link),
            trigger: event.unwrap_or_else(|| "cli".into()),
            drone_repo,
            jobs,
            dry_run,
            inline,
            drone_server,
            mirror_forge,
            drone_token: raw.drone_token.map(Secret::new),
            drone_branch: raw.drone_branch.unwrap_or_else(|| "main".into()),
            cleanup_after,
            min_free_bytes,
            idle_exit_code,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::parse(&env(pairs), None, None, Path::new("/work"))
    }

    #[test]
    fn a_drone_custom_build_from_the_listener_is_tag_mode() {
        let s = parse(&[
            ("DRONE_BUILD_EVENT", "custom"),
            ("DRONE_BUILD_NUMBER", "17"),
            ("DRONE_WORKSPACE", "/drone/src"),
            (
                "DRONE_COMMIT_SHA",
                "ffffffffffffffffffffffffffffffffffffffff",
            ),
            ("CANON_RECIPE", "custom-html"),
            ("CANON_TAG", "1.2.0+3.4.5"),
            ("CANON_COMMIT", SHA),
            ("PLUGIN_CONFIG", "enrollment.yml"),
            ("PLUGIN_COMMAND", "./harness.sh"),
            ("PLUGIN_UPSTREAM_TOKEN", ""),
            ("PLUGIN_ENV", r#"{"A":"1","B":2}"#),
            ("PLUGIN_LOCK_WAIT", "90s"),
        ])
        .unwrap();
        assert_eq!(s.mode, Mode::Tag);
        assert_eq!(s.recipe.clone().unwrap().as_str(), "custom-html");
        assert_eq!(s.tested, Some(TestedRef::Tag("1.2.0+3.4.5".into())));
        // DRONE_COMMIT_SHA is the config repo's commit here, not the tag's: not a claim.
        assert_eq!(
            s.claimed_commits,
            vec![ClaimedCommit {
                source: "CANON_COMMIT",
                commit: SHA.into()
            }]
        );
        assert_eq!(s.runner, RunnerKind::Command);
        assert!(s.upstream_token.is_none(), "an empty secret is unset");
        assert_eq!(s.env.get("B").map(String::as_str), Some("2"));
        assert_eq!(s.lock_wait, LockWait::Wait(Duration::from_secs(90)));
        assert_eq!(
            s.report_path("canon-report.json"),
            PathBuf::from("/drone/src/canon-report.json")
        );
        assert_eq!(s.build, "17");
        assert_eq!(s.trigger, "custom");
    }

    #[test]
    fn known_hosts_is_a_path_under_the_workspace() {
        let base = [
            ("DRONE_BUILD_EVENT", "tag"),
            ("DRONE_TAG", "1.0.0+1"),
            ("DRONE_WORKSPACE", "/drone/src"),
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_RECIPE", "app"),
        ];
        let with = |value: &str| {
            let mut pairs = base.to_vec();
            pairs.push(("PLUGIN_KNOWN_HOSTS", value));
            parse(&pairs).unwrap().known_hosts
        };
        assert_eq!(
            with(".drone/known_hosts"),
            Some(PathBuf::from("/drone/src/.drone/known_hosts"))
        );
        assert_eq!(
            with("/etc/ssh/ssh_known_hosts"),
            Some(PathBuf::from("/etc/ssh/ssh_known_hosts"))
        );
        // Drone passes a missing value as "": unset, so ~/.ssh/known_hosts stays in charge.
        assert_eq!(with(""), None);
    }

    #[test]
    fn a_tag_build_claims_drone_commit_sha() {
        let s = parse(&[
            ("DRONE_BUILD_EVENT", "tag"),
            ("DRONE_TAG", "1.0.0+1"),
            ("DRONE_COMMIT_SHA", &SHA.to_uppercase()),
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_RECIPE", "app"),
            ("PLUGIN_RUNNER", "docker"),
        ])
        .unwrap();
        assert_eq!(s.tested, Some(TestedRef::Tag("1.0.0+1".into())));
        assert_eq!(s.claimed_commits[0].source, "DRONE_COMMIT_SHA");
        assert_eq!(s.claimed_commits[0].commit, SHA);
    }

    #[test]
    fn cron_is_the_sweep_and_mode_wins_over_the_event() {
        let s = parse(&[
            ("DRONE_BUILD_EVENT", "cron"),
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_JOBS", "4"),
            ("PLUGIN_DRY_RUN", "true"),
        ])
        .unwrap();
        assert_eq!((s.mode, s.jobs, s.dry_run), (Mode::Sweep, Some(4), true));
        let s = parse(&[
            ("DRONE_BUILD_EVENT", "push"),
            ("PLUGIN_MODE", "sweep"),
            ("PLUGIN_CONFIG", "e.yml"),
        ])
        .unwrap();
        assert_eq!(s.mode, Mode::Sweep);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = parse(&[
            ("DRONE_BUILD_EVENT", "custom"),
            ("PLUGIN_TAG", "1.0.0+1"),
            ("PLUGIN_RECIPE", "Bad/Name"),
            ("PLUGIN_COMMIT", "abc123"),
            ("PLUGIN_QUICK", "yes"),
            ("PLUGIN_RUNNER", "kubernetes"),
            ("PLUGIN_TIMEOUT", "soon"),
            ("PLUGIN_ENV", "[1, {\"x\": 1}]"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for want in [
            "`config`",
            "`recipe`: invalid recipe name",
            "commit: \"abc123\" is not a full commit id",
            "`quick` must be true or false",
            "`runner` must be command, docker or abra",
            "`timeout` must be a duration",
            "`env`: items must be",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert_eq!(err.problems.len(), 7, "{text}");
    }

    #[test]
    fn events_that_pick_no_mode_are_explained() {
        let err = parse(&[("DRONE_BUILD_EVENT", "push"), ("PLUGIN_CONFIG", "e")]).unwrap_err();
        assert!(err
            .to_string()
            .contains("DRONE_BUILD_EVENT=push does not pick a mode"));
        let err = parse(&[("DRONE_BUILD_EVENT", "custom"), ("PLUGIN_CONFIG", "e")]).unwrap_err();
        assert!(err.to_string().contains("but no tag"));
        let err = parse(&[("PLUGIN_CONFIG", "e")]).unwrap_err();
        assert!(err.to_string().contains("not a Drone build"));
    }

    #[test]
    fn flags_win_over_plugin_env_and_tag_and_ref_exclude_each_other() {
        let e = env(&[
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_RECIPE", "from-env"),
            ("PLUGIN_COMMAND", "true"),
        ]);
        let cli = RawSettings {
            recipe: Some("from-flag".into()),
            git_ref: Some("main".into()),
            ..Default::default()
        };
        let s = Settings::parse(&e, Some(cli), Some(Mode::Tag), Path::new("/w")).unwrap();
        assert_eq!(s.recipe.unwrap().as_str(), "from-flag");
        assert_eq!(s.tested, Some(TestedRef::Ref("main".into())));
        let cli = RawSettings {
            tag: Some("1.0.0+1".into()),
            git_ref: Some("main".into()),
            ..Default::default()
        };
        let err = Settings::parse(&e, Some(cli), Some(Mode::Tag), Path::new("/w")).unwrap_err();
        assert!(err.to_string().contains("not both"));
    }

    #[test]
    fn sweep_settings_fall_back_to_drone_metadata() {
        let s = parse(&[
            ("DRONE_BUILD_EVENT", "cron"),
            ("DRONE_SYSTEM_PROTO", "https"),
            ("DRONE_SYSTEM_HOST", "drone.example.org"),
            ("DRONE_REPO", "canon/canon"),
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_DRONE_TOKEN", "t0k"),
            ("PLUGIN_MIN_FREE", "10G"),
            ("PLUGIN_IDLE_EXIT_CODE", "78"),
            ("PLUGIN_CLEANUP_AFTER", "2h"),
        ])
        .unwrap();
        assert_eq!(s.drone_server.as_deref(), Some("https://drone.example.org"));
        assert_eq!(s.drone_repo.as_deref(), Some("canon/canon"));
        assert_eq!(s.drone_branch, "main");
        assert_eq!(format!("{:?}", s.drone_token), "Some(***)");
        assert_eq!(s.min_free_bytes, Some(10 << 30));
        assert_eq!(s.idle_exit_code, 78);
        assert_eq!(s.cleanup_after, Duration::from_secs(7200));
    }

    #[test]
    fn command_settings_with_a_builtin_runner_are_refused() {
        let err = parse(&[
            ("PLUGIN_MODE", "tag"),
            ("PLUGIN_CONFIG", "e"),
            ("PLUGIN_RECIPE", "a"),
            ("PLUGIN_TAG", "1.0.0+1"),
            ("PLUGIN_RUNNER", "docker"),
            ("PLUGIN_PROMOTE_COMMAND", "x"),
        ])
        .unwrap_err();
        assert!(err
            .to_string()
            .contains("`promote_command` is only used by the command runner"));
    }
}
