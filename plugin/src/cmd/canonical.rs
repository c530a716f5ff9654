//! `canon-plugin canonical`: show, pin and unpin one recipe's canonical, draw its badge, and
//! deploy it again as the warm canonical (`rewarm`, [`crate::tag_mode::rewarm`]).
//!
//! `show` adds to the record who holds the recipe's warm data on this host
//! ([`canon_shared::state::holds`]): read live from the state dir, never stored with the record.
//!
//! The badge is the listener's `/badge/<recipe>.svg` drawn from the state dir alone
//! ([`canon_shared::badge`]): the canonical and the tail of the history. Without the listener's
//! journal it cannot know a tag that is being tested, only one that was refused.
//!
//! The flags a variable can give (`--state-dir`, `--state-repo`, `--mirror-token-file`,
//! `--ssh-key-file`, `--by`) are built from and read by the settings table
//! ([`crate::settings::KNOWN_SETTINGS`]), with `run`'s rules: a blank variable is unset and
//! every problem is reported at once (exit 2).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use canon_shared::badge::{self, RecipeStatus};
use canon_shared::mirror::Credentials;
use canon_shared::recipe::RecipeName;
use canon_shared::secret::Secret;
use canon_shared::settings::{Problems, SettingsError};
use canon_shared::state::holds::{WarmHolds, WarmStatus};
use canon_shared::state::{self, CanonicalRecord, LockWait, StateDir, StateError, StateStore};
use clap::{Args as ClapArgs, Subcommand};

use crate::settings::{
    CanonicalBy, CanonicalRewarm, CanonicalTarget, SubcommandFlags, SubcommandValues, Variables,
};

/// Where and which recipe.
#[derive(Debug, ClapArgs)]
pub struct Target {
    /// The state dir, the state repository and its credentials, from
    /// [`crate::settings::KNOWN_SETTINGS`].
    #[command(flatten)]
    pub place: SubcommandFlags<CanonicalTarget>,
    /// The recipe.
    #[arg(long)]
    pub recipe: RecipeName,
    /// The enrollment file: a recipe not enrolled there is refused (exit 2), apart from one
    /// that is enrolled but has no canonical yet.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Returns why `target` names no recipe to act on: the enrollment (when given) does not enroll
/// it, or cannot be read.
fn not_enrolled(target: &Target) -> Option<String> {
    let path = target.config.as_ref()?;
    match canon_shared::recipe::Enrollment::load(path) {
        Err(e) => Some(crate::exit::error_chain(&e)),
        Ok(enrollment) if enrollment.get(&target.recipe).is_none() => Some(format!(
            "recipe `{}` is not enrolled in {}",
            target.recipe,
            path.display()
        )),
        Ok(_) => None,
    }
}

/// Where the records are: [`Target`]'s settings, read from its flags and the variables.
#[derive(Debug)]
struct Place {
    /// The state directory (with a state repository: this host's clone and locks).
    state_dir: PathBuf,
    /// The git state repository, when the records are there.
    state_repo: Option<String>,
    /// The token for the state repository over HTTPS.
    mirror_token: Option<Secret>,
    /// A private key file for the state repository over SSH.
    ssh_key_file: Option<PathBuf>,
}

impl Place {
    /// Reads `target`'s settings, every problem at once.
    fn read(target: &Target, vars: &Variables) -> Result<Self, SettingsError> {
        let values = target.place.read(vars);
        let mut problems = Problems::default();
        let state_repo = values.text("state_repo");
        // The token is only for a state repository: without one the file is never opened.
        let mirror_token = match state_repo {
            Some(_) => values.token_from_file("mirror_token_file", &mut problems),
            None => None,
        };
        problems.into_result()?;
        Ok(Place {
            // The table gives it a default, so it is never unset.
            state_dir: values.path("state_dir").unwrap_or_default(),
            state_repo,
            mirror_token,
            ssh_key_file: values.path("ssh_key_file"),
        })
    }

    /// Opens the store the records are in.
    fn store(&self) -> Box<dyn StateStore> {
        let Some(url) = &self.state_repo else {
            return Box::new(StateDir::new(&self.state_dir));
        };
        let credentials = Credentials {
            mirror_token: self.mirror_token.clone(),
            ssh_key: self.ssh_key_file.clone(),
            ..Credentials::default()
        };
        state::open_store_at(&self.state_dir, Some(url.as_str()), &credentials)
    }
}

/// `canonical` subcommands.
#[derive(Debug, Subcommand)]
pub enum CanonicalCommand {
    /// Print the canonical record as JSON, with who holds the warm data on this host
    /// (`warm_status`: its `status`, idle, attached or promoting, and the `holders`); exit 1 when
    /// there is no canonical.
    #[command(
        after_help = "Example:\n  canon-plugin canonical show --recipe custom-html --state-dir /var/lib/canon"
    )]
    Show(Target),
    /// Hold the canonical: nothing promotes the recipe until it is unpinned.
    #[command(
        after_help = "Example:\n  canon-plugin canonical pin --recipe custom-html --reason \"1.3.0 breaks logins\""
    )]
    Pin {
        #[command(flatten)]
        target: Target,
        /// Why (recorded in the canonical and the history).
        #[arg(long)]
        reason: String,
        /// Who, from [`crate::settings::KNOWN_SETTINGS`] (default: `$USER`).
        #[command(flatten)]
        by: SubcommandFlags<CanonicalBy>,
    },
    /// Write the recipe's badge (SVG, as the listener serves it) to stdout or a file.
    #[command(
        after_help = "Example:\n  canon-plugin canonical badge --recipe custom-html --out custom-html.svg"
    )]
    Badge {
        #[command(flatten)]
        target: Target,
        /// Write it to this file (replaced atomically) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Deploy the canonical's tag again as the warm canonical, under the same hold as a
    /// promote's warm deploy, for a host that lost its warm data. The canonical and its history
    /// do not change. Exit 0 deployed, 1 failed (no canonical yet, no checkout of its commit,
    /// the canonical moved meanwhile, the deploy failed), 2 bad settings (no `--config`, a recipe
    /// not enrolled, a runner that keeps no warm data).
    #[command(
        after_help = "Example:\n  canon-plugin canonical rewarm --recipe custom-html --config enrollment.yml --state-dir /var/lib/canon --runner docker"
    )]
    Rewarm {
        #[command(flatten)]
        target: Target,
        /// The runner, its promote step and the mirror's credentials, from
        /// [`crate::settings::KNOWN_SETTINGS`].
        #[command(flatten)]
        how: SubcommandFlags<CanonicalRewarm>,
    },
    /// Release a pin.
    #[command(
        after_help = "Example:\n  canon-plugin canonical unpin --recipe custom-html --reason \"fixed upstream\""
    )]
    Unpin {
        #[command(flatten)]
        target: Target,
        /// Why (recorded in the history).
        #[arg(long)]
        reason: String,
        /// Who, from [`crate::settings::KNOWN_SETTINGS`] (default: `$USER`).
        #[command(flatten)]
        by: SubcommandFlags<CanonicalBy>,
    },
}

/// Returns who pins or unpins: `--by`, else `$USER`, else the table's default.
fn who(by: &SubcommandFlags<CanonicalBy>, vars: &Variables) -> String {
    // The table gives it a default, so it is never unset.
    by.read(vars).text("by").unwrap_or_default()
}

/// How much of the end of the history the badge reads (as the listener does).
const HISTORY_TAIL: u64 = 64 * 1024;

/// Why a badge could not be written.
#[derive(Debug, thiserror::Error)]
enum BadgeError {
    /// The state directory does not exist: a wrong `--state-dir` must not draw "none yet".
    #[error("state directory {0} does not exist")]
    NoStateDir(PathBuf),
    /// The canonical or the history is unreadable, or the file cannot be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// Stdout cannot be written.
    #[error("cannot write the badge to stdout: {0}")]
    Stdout(std::io::Error),
}

/// Returns the badge of `recipe` drawn from its records, and its status.
fn draw(
    recipe: &RecipeName,
    place: &Place,
    store: &dyn StateStore,
) -> Result<(String, RecipeStatus), BadgeError> {
    let (canonical, history) = match &place.state_repo {
        None => {
            let dir = &place.state_dir;
            if !dir.is_dir() {
                return Err(BadgeError::NoStateDir(dir.to_path_buf()));
            }
            let state = StateDir::new(dir);
            (
                state.read_canonical(recipe)?,
                state.read_history_tail(recipe, HISTORY_TAIL)?,
            )
        }
        Some(_) => (store.read_canonical(recipe)?, store.read_history(recipe)?),
    };
    let status = RecipeStatus::decide(canonical.as_ref(), &badge::history_facts(&history));
    Ok((badge::render(&status), status))
}

/// Writes the badge of `recipe` to `out` (atomically) or stdout.
fn write_badge(
    recipe: &RecipeName,
    place: &Place,
    store: &dyn StateStore,
    out: Option<&std::path::Path>,
) -> Result<(), BadgeError> {
    use std::io::Write as _;
    let (svg, status) = draw(recipe, place, store)?;
    match out {
        Some(path) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => std::path::Path::new("."),
            };
            state::write_atomic(dir, path, svg.as_bytes())?;
            canon_shared::errln!(
                "canon: wrote the badge of {} ({}, {status}) to {}",
                recipe,
                status.value(),
                path.display()
            );
        }
        None => {
            let mut stdout = canon_shared::console::stdout();
            stdout
                .write_all(svg.as_bytes())
                .and_then(|()| stdout.write_all(b"\n"))
                .and_then(|()| stdout.flush())
                .map_err(BadgeError::Stdout)?;
        }
    }
    Ok(())
}

/// What `show` prints: the record and, beside its fields, the warm data's status under
/// `warm_status`, as the sweep report names it (so `status` never means two things).
#[derive(serde::Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    record: &'a CanonicalRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    warm_status: Option<WarmStatus>,
}

/// Returns who holds `recipe`'s warm data on this host, or `None` (said on stderr) when the
/// holders cannot be read: the record is still worth showing.
fn warm_status(recipe: &RecipeName, place: &Place) -> Option<WarmStatus> {
    match WarmHolds::new(&place.state_dir, recipe).status() {
        Ok(status) => Some(status),
        Err(e) => {
            canon_shared::errln!("warning: cannot tell who holds the warm data: {e}");
            None
        }
    }
}

/// Runs a `canonical` subcommand; its settings not given as flags come from `vars`.
pub fn main(cmd: CanonicalCommand, vars: &Variables) -> ExitCode {
    let wait = LockWait::Wait(Duration::from_secs(30));
    let target = match &cmd {
        CanonicalCommand::Show(t) => t,
        CanonicalCommand::Pin { target, .. }
        | CanonicalCommand::Unpin { target, .. }
        | CanonicalCommand::Badge { target, .. }
        | CanonicalCommand::Rewarm { target, .. } => target,
    };
    let place = match Place::read(target, vars) {
        Ok(place) => place,
        Err(e) => {
            canon_shared::errln!("error: {e}");
            return ExitCode::from(crate::exit::EXIT_USAGE);
        }
    };
    let unusable = not_enrolled(target).or_else(|| match place.state_repo {
        // The clone of a state repository is made when missing.
        Some(_) => None,
        None => super::require_state_dir(&place.state_dir).err(),
    });
    if let Some(why) = unusable {
        canon_shared::errln!("error: {why}");
        return ExitCode::from(crate::exit::EXIT_USAGE);
    }
    if let CanonicalCommand::Rewarm { target, how } = &cmd {
        return rewarm(target, &place, &how.read(vars), vars);
    }
    let store = place.store();
    let result = match &cmd {
        CanonicalCommand::Badge { target, out } => {
            return match write_badge(&target.recipe, &place, store.as_ref(), out.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    crate::exit::report_error(&e);
                    ExitCode::FAILURE
                }
            };
        }
        CanonicalCommand::Show(t) => store.read_canonical(&t.recipe),
        CanonicalCommand::Pin { target, reason, by } => {
            let by = who(by, vars);
            state::pin(store.as_ref(), &target.recipe, reason, &by, wait).map(Some)
        }
        CanonicalCommand::Unpin { target, reason, by } => {
            let by = who(by, vars);
            state::unpin(store.as_ref(), &target.recipe, reason, &by, wait).map(Some)
        }
        // Handled above: it prints no record.
        CanonicalCommand::Rewarm { .. } => return ExitCode::from(crate::exit::EXIT_USAGE),
    };
    let warm = match &cmd {
        CanonicalCommand::Show(t) => warm_status(&t.recipe, &place),
        _ => None,
    };
    match result {
        Ok(Some(record)) => {
            let shown = Shown {
                record: &record,
                warm_status: warm,
            };
            let json = match serde_json::to_string_pretty(&shown) {
                Ok(json) => json,
                Err(e) => {
                    canon_shared::errln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // A reader that stops early (`| head`, `| grep -q`) ends it as SIGPIPE would.
            canon_shared::outln!("{json}");
            ExitCode::SUCCESS
        }
        Ok(None) => {
            match warm.filter(|w| !w.is_idle()) {
                // A first promote may be under way.
                Some(w) => canon_shared::errln!("no canonical yet (warm data: {w})"),
                None => canon_shared::errln!("no canonical yet"),
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            crate::exit::report_error(&e);
            ExitCode::FAILURE
        }
    }
}

/// What `rewarm` reads besides [`Place`]: the runner, the lock wait, the run folder and the
/// mirror's credentials; every problem at once.
struct Rewarming {
    runner: Box<dyn crate::runners::Runner>,
    lock_wait: LockWait,
    work_dir: PathBuf,
    mirror_token: Option<Secret>,
    known_hosts: Option<PathBuf>,
}

impl Rewarming {
    /// Reads `how` (and the mirror token file of `target`), every problem at once.
    fn read(
        target: &Target,
        how: &SubcommandValues,
        vars: &Variables,
    ) -> Result<Self, SettingsError> {
        use crate::settings::{parse_duration, RunnerKind};
        let mut problems = Problems::default();
        let kind = match how.given("runner").as_deref().map(str::trim) {
            None | Some("docker") => Some(RunnerKind::Docker),
            Some("abra") => Some(RunnerKind::Abra),
            Some("command") => Some(RunnerKind::Command),
            Some(other) => {
                problems.push(format!(
                    "`runner` must be command, docker or abra, not {other:?}"
                ));
                None
            }
        };
        let duration = |name: &str, problems: &mut Problems| {
            let value = how.text(name).unwrap_or_default();
            problems.check(parse_duration(name, &value))
        };
        let timeout = duration("timeout", &mut problems);
        let lock_wait = duration("lock_wait", &mut problems);
        // The token for the mirror: its variable, else the file `--mirror-token-file` names.
        let mirror_token = match how.secret("mirror_token") {
            Some(token) => Some(token),
            None => target
                .place
                .read(vars)
                .token_from_file("mirror_token_file", &mut problems),
        };
        problems.into_result()?;
        Ok(Rewarming {
            runner: crate::runners::build(
                kind.unwrap_or(RunnerKind::Docker),
                None,
                how.text("promote_command"),
                timeout.unwrap_or_default(),
            ),
            lock_wait: match lock_wait.unwrap_or_default() {
                d if d.is_zero() => LockWait::Fail,
                d => LockWait::Wait(d),
            },
            work_dir: how
                .given("work_dir")
                .map_or_else(std::env::temp_dir, PathBuf::from),
            mirror_token,
            known_hosts: how.path("known_hosts"),
        })
    }
}

/// Runs `canonical rewarm`: loads the enrollment (`--config` is required: it names the
/// mirror), then deploys the canonical's tag again as the warm canonical
/// ([`crate::tag_mode::rewarm`]).
fn rewarm(target: &Target, place: &Place, how: &SubcommandValues, vars: &Variables) -> ExitCode {
    let usage = |why: String| {
        canon_shared::errln!("error: {why}");
        ExitCode::from(crate::exit::EXIT_USAGE)
    };
    let Some(config) = &target.config else {
        return usage(
            "`canonical rewarm` needs --config: the enrollment names the recipe's mirror".into(),
        );
    };
    let enrollment = match canon_shared::recipe::Enrollment::load(config) {
        Ok(e) => e,
        Err(e) => return usage(crate::exit::error_chain(&e)),
    };
    // `not_enrolled` has refused a recipe the enrollment does not name.
    let Some(recipe) = enrollment.get(&target.recipe).cloned() else {
        return usage(format!(
            "recipe `{}` is not enrolled in {}",
            target.recipe,
            config.display()
        ));
    };
    let how = match Rewarming::read(target, how, vars) {
        Ok(how) => how,
        Err(e) => return usage(e.to_string()),
    };
    let credentials = Credentials {
        mirror_token: how.mirror_token.clone(),
        ssh_key: place.ssh_key_file.clone(),
        known_hosts: how.known_hosts.clone(),
        mirror_base: enrollment.token_bases().mirror,
        ..Credentials::default()
    };
    let settings = crate::tag_mode::RunSettings {
        upstream: credentials.upstream(&recipe),
        mirror: credentials.mirror(&recipe),
        recipe,
        // Replaced by the canonical's tag.
        tested: canon_shared::gate::TestedRef::Ref(String::new()),
        claimed_commits: Vec::new(),
        quick: false,
        warm: false,
        state_dir: place.state_dir.clone(),
        state_repo: place
            .state_repo
            .as_deref()
            .map(|url| credentials.state_remote(url)),
        work_dir: how.work_dir.clone(),
        keep_work_dir: false,
        lock_wait: how.lock_wait,
        env: Default::default(),
        build: format!("rewarm-{}", std::process::id()),
        build_link: None,
        trigger: "cli".into(),
        report: None,
    };
    match crate::tag_mode::rewarm(&settings, how.runner.as_ref()) {
        Ok(canonical) => {
            canon_shared::outln!(
                "canon: deployed {} {} (commit {}) again as the warm canonical",
                canonical.recipe,
                canonical.version,
                canonical.commit
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            crate::exit::report_error(&e);
            ExitCode::from(if e.is_usage() {
                crate::exit::EXIT_USAGE
            } else {
                crate::exit::EXIT_RED
            })
        }
    }
}
