//! Validation: [`Settings::parse`] turns the raw environment and flags into [`Settings`].
//!
//! One function per concern (here the switches, the runner, the harness environment, durations,
//! the sweep's numbers and the paths; in `secret_files` the secrets; in `target` the mode, the
//! recipe, the tested ref and the claimed commits), each recording its problems in one shared list
//! instead of returning early, so an operator sees every problem at once and fixes a pipeline in
//! one round (exit code 2). The typed reads ([`Read`]) take each setting's default from the table,
//! so a default is written once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use canon_shared::settings::{
    parse_base_url, parse_bool, parse_count, parse_duration, parse_env_items, parse_exit_code,
    parse_git_location, parse_list, parse_size,
};
use canon_shared::state::LockWait;

use super::environment::{drone_value, DroneMeta};
use super::secret_files::Secrets;
use super::table::{setting_doc, SettingType, Use};
use super::target::{mode, recipe, tag_mode_target, Requested};
use super::{Environment, Mode, Problems, RawSettings, RunnerKind, Settings, SettingsError};

impl Settings {
    /// Validates raw settings. `cli` are the `run` subcommand's flags (they win over `PLUGIN_*`);
    /// `forced` is the mode a subcommand implies. `cwd` resolves the default report path when
    /// `DRONE_WORKSPACE` is unset. Every problem is reported at once. Reads the files the
    /// `*_file` secret settings name.
    pub fn parse(
        env: &Environment,
        cli: Option<RawSettings>,
        forced: Option<Mode>,
        cwd: &Path,
    ) -> Result<Settings, SettingsError> {
        let raw_flags = cli.unwrap_or_default();
        let raw = raw_flags.clone().or(env.plugin.clone());
        let d = &env.drone;
        let mut problems = Problems::default();
        let p = &mut problems;

        // Each step below records its problems and goes on; the order is the order they print.
        let event = drone_value(&d.drone_build_event);
        let requested = Requested::resolve(&raw, d, event.as_deref(), p);
        let mode = mode(forced, raw.get("mode"), event.as_deref(), &requested, p);
        let mut warnings = Vec::new();
        if let Some(mode) = mode {
            other_mode(&raw_flags, &env.plugin, mode, forced, p, &mut warnings);
        }
        let config = raw.text("config");
        if config.is_none() {
            p.push("`config` (PLUGIN_CONFIG or --config) is required: the enrollment file");
        }
        let state_dir = raw
            .text("state_dir")
            .unwrap_or_else(|| default_of("state_dir").into());
        let (recipe_given, recipe) = recipe(&raw, d, p);
        let drone_repo = raw.text("drone_repo").or(drone_value(&d.drone_repo));
        let (tested, claimed_commits) = if mode == Some(Mode::Tag) {
            tag_mode_target(&raw, d, &requested, recipe_given || drone_repo.is_some(), p)
        } else {
            (None, Vec::new())
        };

        let mut read = Read {
            raw: &raw,
            p: &mut *p,
        };
        let quick = read.boolean("quick");
        let init_state = read.boolean("init_state");
        let warm = !raw.cold() && read.boolean("warm");
        let keep_work_dir = read.boolean("keep_work_dir");
        let dry_run = read.boolean("dry_run");
        let inline = read.boolean("inline");
        let runner = runner(&raw, mode, read.p);
        let env_map = harness_env(raw.get("env"), read.p);

        let timeout = read.duration("timeout");
        let cleanup_after = read.duration("cleanup_after");
        let lock_wait = read.duration("lock_wait");
        if timeout.is_zero() {
            read.p.push("`timeout` must be longer than 0s");
        }
        let recipe_deadline = read.duration("recipe_deadline");
        if recipe_deadline.is_zero() {
            read.p.push("`recipe_deadline` must be longer than 0s");
        }

        let jobs = read.parsed("jobs", parse_count);
        let min_free_bytes = read.parsed("min_free", |_, v| min_free(v));
        let idle_exit_code = read.exit_code("idle_exit_code");
        let mirror_forge = mirror_forge(raw.text("mirror_forge"), read.p);
        let state_repo = read.parsed("state_repo", parse_git_location);
        let listener_url = read.parsed("listener_url", parse_base_url);
        let drone_server = drone_server(&raw, d);
        let places = Places::resolve(&raw, d, cwd);
        let mut secrets = Secrets::resolve(&raw, &places.workspace, p);

        problems.into_result()?;
        Ok(Settings {
            // `mode` is Some whenever no problem was recorded.
            mode: mode.unwrap_or(Mode::Tag),
            config: PathBuf::from(config.unwrap_or_default()),
            state_dir: PathBuf::from(state_dir),
            recipe,
            tested,
            claimed_commits,
            quick,
            init_state,
            warm,
            // `runner` is Some whenever no problem was recorded.
            runner: runner.unwrap_or(RunnerKind::Docker),
            command: raw.text("command"),
            promote_command: raw.text("promote_command"),
            env: env_map,
            timeout,
            state_repo,
            lock_wait: if lock_wait.is_zero() {
                LockWait::Fail
            } else {
                LockWait::Wait(lock_wait)
            },
            report: places.report,
            workspace: places.workspace,
            work_dir: places.work_dir,
            keep_work_dir,
            upstream_token: secrets.take("upstream_token"),
            mirror_token: secrets.take("mirror_token"),
            ssh_key: secrets.take("ssh_key"),
            known_hosts: places.known_hosts,
            build: build_id(d),
            build_link: drone_value(&d.drone_build_link),
            trigger: event.unwrap_or_else(|| "cli".into()),
            drone_repo,
            jobs,
            recipe_deadline,
            dry_run,
            inline,
            drone_server,
            mirror_forge,
            drone_token: secrets.take("drone_token"),
            drone_branch: raw
                .text("drone_branch")
                .unwrap_or_else(|| default_of("drone_branch").into()),
            listener_url,
            listener_token: secrets.take("listener_token"),
            cleanup_after,
            min_free_bytes,
            idle_exit_code,
            warnings,
        })
    }
}

/// Returns what a problem calls the mode a subcommand or Drone picked.
fn mode_name(mode: Mode, forced: Option<Mode>) -> &'static str {
    match (mode, forced) {
        (Mode::Tag, Some(_)) => "`run` is tag mode",
        (Mode::Sweep, Some(_)) => "`sweep` is the sweep",
        (Mode::Tag, None) => "this build runs tag mode",
        (Mode::Sweep, None) => "this build runs the sweep",
    }
}

/// Records the settings of the other mode. A flag of the other mode is refused: typed on a command
/// line it is a mistake, and ignoring it would act on one (`run --dry-run` would run the harness
/// and write history). So is a `mode` that names the other mode, and a variable of the other mode
/// whose table entry says ignoring it would do what it asked not to. Any other variable of the
/// other mode is a warning: Drone passes every `settings:` key of a step, and a pipeline may
/// share one settings block between its tag and cron steps.
fn other_mode(
    flags: &RawSettings,
    vars: &RawSettings,
    mode: Mode,
    forced: Option<Mode>,
    problems: &mut Problems,
    warnings: &mut Vec<String>,
) {
    let place = match mode {
        Mode::Tag => Use::Tag,
        Mode::Sweep => Use::Sweep,
    };
    let here = mode_name(mode, forced);
    if let (Some(forced), Some(asked)) = (forced, raw_mode(flags).or(raw_mode(vars))) {
        let (asked_mode, command) = match asked.trim() {
            "tag" => (Some(Mode::Tag), "canon-plugin run"),
            "sweep" => (Some(Mode::Sweep), "canon-plugin sweep"),
            _ => (None, ""),
        };
        if asked_mode.is_some_and(|m| m != forced) {
            problems.push(format!(
                "`mode` (PLUGIN_MODE or --mode) is {}, but {here}: use `{command}`",
                asked.trim()
            ));
        }
    }
    if flags.cold() && place != Use::Tag {
        problems.push(format!(
            "--cold is a flag of tag mode (`canon-plugin run`); {here} and would ignore it"
        ));
    }
    for (s, _) in flags.given() {
        if s.name != "mode" && !s.used_in(place) {
            problems.push(format!(
                "{} is a setting of {}; {here} and would ignore it",
                s.label(),
                s.belongs_to()
            ));
        }
    }
    for (s, value) in vars.given() {
        if s.name == "mode" || s.used_in(place) || flags.get(s.name).is_some() {
            continue;
        }
        // A boolean set to false asks for nothing that ignoring it could break.
        let asks = !(s.kind == SettingType::Boolean && parse_bool(s.name, value) == Ok(false));
        let text = format!("{} is a setting of {}; {here}", s.label(), s.belongs_to());
        if s.refused_elsewhere && asks {
            problems.push(format!("{text} and would ignore it"));
        } else {
            warnings.push(format!("{text}: ignored"));
        }
    }
}

/// Returns the `mode` setting of `raw`.
fn raw_mode(raw: &RawSettings) -> Option<&str> {
    raw.get("mode")
}

/// Returns the table's default text of the setting `name` (empty when it has none).
fn default_of(name: &str) -> &'static str {
    setting_doc(name).map_or("", |s| s.default)
}

/// Typed reads of the raw settings: a bad value is recorded and the table's default (or `None`)
/// is used instead, so validation goes on to find the other problems.
struct Read<'a> {
    /// The settings, flags over `PLUGIN_*`.
    raw: &'a RawSettings,
    /// Where problems are recorded.
    p: &'a mut Problems,
}

impl Read<'_> {
    /// Returns the setting `name` parsed by `parse` (which names the setting in its problem),
    /// `None` when it is unset or bad.
    fn parsed<T>(
        &mut self,
        name: &str,
        parse: impl Fn(&str, &str) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.raw.get(name)?;
        self.p.check(parse(name, value))
    }

    /// Returns the setting `name` parsed by `parse`, else its default from the table. The table's
    /// defaults parse (a unit test checks each), so the last fallback is never reached.
    fn or_default<T: Default>(
        &mut self,
        name: &str,
        parse: impl Fn(&str, &str) -> Result<T, String>,
    ) -> T {
        self.parsed(name, &parse)
            .or_else(|| parse(name, default_of(name)).ok())
            .unwrap_or_default()
    }

    /// Returns a boolean setting; its table default when unset or bad (a bad value is recorded).
    fn boolean(&mut self, name: &str) -> bool {
        self.or_default(name, parse_bool)
    }

    /// Returns a duration setting; its table default when unset or bad (a bad value is recorded).
    fn duration(&mut self, name: &str) -> Duration {
        self.or_default(name, parse_duration)
    }

    /// Returns an exit code setting; its table default when unset or bad (a bad value is recorded).
    fn exit_code(&mut self, name: &str) -> u8 {
        self.or_default(name, parse_exit_code)
    }
}

/// Returns the runner (`command` when unset and a `command` is given, else `docker`), and in
/// tag mode records `command` settings that the chosen runner would not use.
fn runner(raw: &RawSettings, mode: Option<Mode>, problems: &mut Problems) -> Option<RunnerKind> {
    let runner = match raw.get("runner").map(str::trim) {
        Some("command") => Some(RunnerKind::Command),
        Some("docker") => Some(RunnerKind::Docker),
        Some("abra") => Some(RunnerKind::Abra),
        Some(other) => {
            problems.push(format!(
                "`runner` must be command, docker or abra, not {other:?}"
            ));
            None
        }
        None if raw.get("command").is_some() => Some(RunnerKind::Command),
        None => Some(RunnerKind::Docker),
    };
    if let (Some(Mode::Tag), Some(runner)) = (mode, runner) {
        if runner == RunnerKind::Command && raw.get("command").is_none() {
            problems.push("the command runner needs `command` (the harness to run)");
        }
        if runner != RunnerKind::Command {
            for name in ["command", "promote_command"] {
                if raw.get(name).is_some() {
                    problems.push(format!(
                        "`{name}` is only used by the command runner, but `runner` is {}",
                        runner.as_str()
                    ));
                }
            }
        }
    }
    runner
}

/// Returns the harness's extra environment from the `env` list (empty when unset or bad).
fn harness_env(v: Option<&str>, problems: &mut Problems) -> BTreeMap<String, String> {
    v.and_then(|v| {
        problems.check(parse_list("env", v).and_then(|items| parse_env_items("env", &items)))
    })
    .unwrap_or_default()
}

/// Parses `min_free`, with the sentence that names the setting.
fn min_free(v: &str) -> Result<u64, String> {
    parse_size(v).ok_or_else(|| {
        format!(
            "`min_free` must be a size like 10G, 500M or 1048576, not {:?}",
            v.trim()
        )
    })
}

/// Returns `mirror_forge`, recording a value that is not an http(s) URL.
fn mirror_forge(v: Option<String>, problems: &mut Problems) -> Option<String> {
    if let Some(u) = &v {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            problems.push(format!(
                "mirror_forge {u:?}: must be the forge's http(s) base URL"
            ));
        }
    }
    v
}

/// Returns `drone_server`, else the server Drone says it is (`DRONE_SYSTEM_PROTO://HOST`).
fn drone_server(raw: &RawSettings, d: &DroneMeta) -> Option<String> {
    raw.text("drone_server").or_else(|| {
        match (
            drone_value(&d.drone_system_proto),
            drone_value(&d.drone_system_host),
        ) {
            (Some(proto), Some(host)) => Some(format!("{proto}://{host}")),
            _ => None,
        }
    })
}

/// The paths a run uses, resolved against the workspace.
struct Places {
    /// `DRONE_WORKSPACE`, else the working directory.
    workspace: PathBuf,
    /// `report` under the workspace.
    report: Option<PathBuf>,
    /// `known_hosts` under the workspace.
    known_hosts: Option<PathBuf>,
    /// `work_dir`, else the system temp dir.
    work_dir: PathBuf,
}

impl Places {
    /// Resolves relative paths against `DRONE_WORKSPACE`, else `cwd`.
    fn resolve(raw: &RawSettings, d: &DroneMeta, cwd: &Path) -> Places {
        let workspace = drone_value(&d.drone_workspace)
            .map(PathBuf::from)
            .unwrap_or_else(|| cwd.to_path_buf());
        Places {
            report: raw.get("report").map(|r| workspace.join(r)),
            known_hosts: raw.get("known_hosts").map(|k| workspace.join(k)),
            work_dir: raw
                .get("work_dir")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            workspace,
        }
    }
}

/// Returns the Drone build number, or `local-<unix time>` outside Drone.
fn build_id(d: &DroneMeta) -> String {
    drone_value(&d.drone_build_number)
        .unwrap_or_else(|| format!("local-{}", time::OffsetDateTime::now_utc().unix_timestamp()))
}

#[cfg(test)]
mod tests {
    use crate::settings::testing::{env, parse};
    use canon_shared::gate::TestedRef;

    use super::*;
    use crate::settings::ClaimedCommit;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

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
                commit: SHA.parse().unwrap()
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

    #[test]
    fn listener_url_is_an_optional_http_base_url() {
        let sweep = |value: Option<&str>| {
            let mut pairs = vec![("DRONE_BUILD_EVENT", "cron"), ("PLUGIN_CONFIG", "e.yml")];
            pairs.extend(value.map(|v| ("PLUGIN_LISTENER_URL", v)));
            parse(&pairs).map(|s| s.listener_url.map(String::from))
        };
        for (value, want) in [
            (None, None),
            // Drone passes a missing value as "": unset.
            (Some(""), None),
            (
                Some("http://127.0.0.1:8088"),
                Some("http://127.0.0.1:8088/"),
            ),
            (
                Some("https://canon.example.org/listener"),
                Some("https://canon.example.org/listener/"),
            ),
        ] {
            assert_eq!(sweep(value).unwrap(), want.map(String::from), "{value:?}");
        }
        for value in [
            "listener:8088",
            "ftp://listener/",
            "http://canon:hunter2@listener:8088/",
        ] {
            let err = sweep(Some(value)).unwrap_err();
            assert_eq!(err.problems.len(), 1, "{value:?}: {err}");
            assert!(err.problems[0].starts_with("`listener_url` "), "{err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn the_listener_url_flag_wins_and_its_problem_is_one_of_many() {
        let e = env(&[
            ("DRONE_BUILD_EVENT", "cron"),
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_LISTENER_URL", "http://from-env:8088"),
        ]);
        let cli = RawSettings::from_values([("listener_url", "http://from-flag:8088")]);
        let s = Settings::parse(&e, Some(cli), None, Path::new("/w")).unwrap();
        assert_eq!(
            s.listener_url.map(String::from).as_deref(),
            Some("http://from-flag:8088/")
        );
        let err = parse(&[
            ("DRONE_BUILD_EVENT", "cron"),
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_JOBS", "0"),
            ("PLUGIN_LISTENER_URL", "https://canon:hunter2@listener/"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 2, "{text}");
        assert!(text.contains("`jobs`"), "{text}");
        assert!(
            text.contains("`listener_url` must not carry a user or password"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn a_flag_of_the_other_mode_is_refused_naming_the_mode_it_belongs_to() {
        let e = env(&[]);
        let run = RawSettings::from_values([
            ("config", "e.yml"),
            ("recipe", "app"),
            ("tag", "1.0.0+1"),
            ("dry_run", "true"),
            ("jobs", "2"),
        ]);
        let err = Settings::parse(&e, Some(run), Some(Mode::Tag), Path::new("/w")).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 2, "{text}");
        assert!(
            text.contains("`dry_run` (PLUGIN_DRY_RUN or --dry-run) is a setting of the sweep (`canon-plugin sweep`); `run` is tag mode and would ignore it"),
            "{text}"
        );
        assert!(text.contains("`jobs` (PLUGIN_JOBS or --jobs)"), "{text}");

        let sweep =
            RawSettings::from_values([("config", "e.yml"), ("mode", "tag"), ("quick", "true")]);
        let err = Settings::parse(&e, Some(sweep), Some(Mode::Sweep), Path::new("/w")).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 2, "{text}");
        assert!(
            text.contains("`mode` (PLUGIN_MODE or --mode) is tag, but `sweep` is the sweep: use `canon-plugin run`"),
            "{text}"
        );
        assert!(
            text.contains(
                "`quick` (PLUGIN_QUICK or --quick) is a setting of tag mode (`canon-plugin run`)"
            ),
            "{text}"
        );
        let same = RawSettings::from_values([("config", "e.yml"), ("mode", "sweep")]);
        assert!(Settings::parse(&e, Some(same), Some(Mode::Sweep), Path::new("/w")).is_ok());
    }

    #[test]
    fn a_variable_of_the_other_mode_is_refused_only_where_ignoring_it_would_act() {
        let tag = [
            ("DRONE_BUILD_EVENT", "tag"),
            ("DRONE_TAG", "1.0.0+1"),
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_RECIPE", "app"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = tag.to_vec();
            pairs.extend_from_slice(extra);
            parse(&pairs)
        };
        // A shared settings block: the sweep's settings only warn in tag mode.
        let s = with(&[("PLUGIN_JOBS", "4"), ("PLUGIN_DRY_RUN", "false")]).unwrap();
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        assert!(
            s.warnings[0].starts_with("`jobs` (PLUGIN_JOBS or --jobs) is a setting of the sweep"),
            "{:?}",
            s.warnings
        );
        assert!(
            s.warnings[0].contains("this build runs tag mode"),
            "{:?}",
            s.warnings
        );
        // Ignoring `dry_run: true` would run the harness for real: refused.
        let err = with(&[("PLUGIN_DRY_RUN", "true")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("`dry_run` (PLUGIN_DRY_RUN or --dry-run) is a setting of the sweep"),
            "{err}"
        );
        // A sweep given a recipe would test every recipe: refused; a setting of both is fine.
        let err = parse(&[
            ("DRONE_BUILD_EVENT", "cron"),
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_RECIPE", "app"),
            ("PLUGIN_TIMEOUT", "5m"),
        ])
        .unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(
            err.to_string().contains(
                "`recipe` (PLUGIN_RECIPE or CANON_RECIPE or --recipe) is a setting of tag mode"
            ),
            "{err}"
        );
        // The tag mode warnings are only about the other mode's settings.
        assert!(with(&[]).unwrap().warnings.is_empty());
    }
}
