//! Settings: raw values from Drone (`PLUGIN_*`, `DRONE_*`, the listener's `CANON_*` build
//! parameters) or from command-line flags, validated into one [`Settings`] value. The problem
//! list, the error and the value parsers are canon-shared's ([`canon_shared::settings`]), the
//! same the listener uses.
//!
//! Two stages, as the house style asks: [`RawSettings`] holds strings exactly as they arrived
//! (an empty value is unset, because Drone sets a `from_secret` whose secret is missing to `""`);
//! [`Settings::parse`] turns them into types and reports every problem at once. Env is read once,
//! in `main`; tests pass a list of pairs to [`Environment::from_pairs`]. The only files
//! [`Settings::parse`] reads are the ones the `*_file` secret settings name.
//!
//! [`KNOWN_SETTINGS`] is the single list of settings, for every subcommand: the `PLUGIN_*`
//! variables (and the old names still read), the flags of `run`, `sweep` and the other
//! subcommands, which mode refuses which setting, the defaults validation falls back to, the
//! settings reference (`docs/reference/plugin-settings.md`, [`settings_table_markdown`]) and the
//! plugin card, each checked by a test, and a
//! packaging check of the settings a `.drone.yml` passes. A new setting is one table entry, one
//! [`Settings`] field and the one line of `validate` that reads it.
//!
//! # Layout
//! - `table`: [`KNOWN_SETTINGS`], the settings reference's table, and what the plugin card is
//!   checked against.
//! - `examples`: one example value per setting, the settings reference's example column.
//! - `environment`: [`RawSettings`], the flags of `run` and `sweep` made from the table
//!   ([`ModeFlags`]), [`DroneMeta`] and [`Environment`], the raw strings.
//! - `secret_files`: the secret settings of the table, each from its value or from the file its
//!   `*_file` setting names.
//! - `subcommands`: the flags of the other subcommands that a variable can give (`canonical`,
//!   `state export`, `mirror-sync`, `recipe plan`), built from the table ([`SubcommandFlags`])
//!   and read by it with the same rules.
//! - `target`: what tag mode tests (mode, recipe, tag or ref) and the commits the build claims.
//! - `validate`: [`Settings::parse`], one function per concern, every problem at once, with the
//!   typed reads that fall back to the table's defaults.
//!
//! This file holds the validated types the rest of the plugin uses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use canon_shared::commit::CommitId;
use canon_shared::gate::TestedRef;
use canon_shared::recipe::RecipeName;
use canon_shared::secret::Secret;
use canon_shared::state::LockWait;

mod environment;
mod examples;
mod secret_files;
mod subcommands;
mod table;
mod target;
mod validate;

/// Settings from `(name, value)` pairs, for the plugin's unit tests: the one way they build an
/// [`Environment`] and parse it (working directory `/work`).
#[cfg(test)]
pub(crate) mod testing {
    use super::{Environment, Settings, SettingsError};

    /// Returns the environment of `pairs`.
    pub(crate) fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .expect("valid pairs")
    }

    /// Parses the settings of `pairs`.
    pub(crate) fn parse(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::parse(&env(pairs), None, None, std::path::Path::new("/work"))
    }
}

pub use canon_shared::settings::{
    parse_base_url, parse_bool, parse_commit, parse_count, parse_duration, parse_exit_code,
    parse_list, parse_size, Problems, SettingsError,
};
pub use environment::{
    DroneMeta, Environment, EnvironmentError, ModeFlags, RawSettings, SweepMode, TagMode,
};
pub use subcommands::{
    CanonicalBy, CanonicalRewarm, CanonicalTarget, FlagGroup, MirrorSync, RecipePlan, StateExport,
    SubcommandFlags, SubcommandValues, Variables,
};
pub use table::{
    plugin_card_properties_yaml, plugin_setting, plugin_settings, setting_doc, settings_of,
    settings_table_markdown, Required, SettingDoc, SettingType, Use, KNOWN_SETTINGS,
};

/// The mode a run is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Test one recipe at one tag (or ref), then the gate.
    Tag,
    /// The weekly sweep.
    Sweep,
}

/// Which runner runs the stage ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerKind {
    /// An external harness command.
    Command,
    /// The built-in Docker runner.
    Docker,
    /// The built-in abra runner.
    Abra,
}

impl RunnerKind {
    /// Returns the runner's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerKind::Command => "command",
            RunnerKind::Docker => "docker",
            RunnerKind::Abra => "abra",
        }
    }
}

/// A commit the build claims for its tag, and where the claim came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedCommit {
    /// Where it came from (`commit`, `CANON_COMMIT`, `DRONE_COMMIT_SHA`).
    pub source: &'static str,
    /// The commit, lower-case full hex.
    pub commit: CommitId,
}

/// Validated settings for every mode. Public so the sweep can build on them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The mode.
    pub mode: Mode,
    /// The enrollment file.
    pub config: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The recipe (tag mode; `None` means: find it from `DRONE_REPO`).
    pub recipe: Option<RecipeName>,
    /// What to test (tag mode).
    pub tested: Option<TestedRef>,
    /// Every commit the build claims for the tag; each must be the tag's peeled commit.
    pub claimed_commits: Vec<ClaimedCommit>,
    /// A quick run.
    pub quick: bool,
    /// Create the state directory when it does not exist.
    pub init_state: bool,
    /// A ref run starts from the canonical's warm data when this host holds it.
    pub warm: bool,
    /// The runner.
    pub runner: RunnerKind,
    /// The harness command (`command` runner).
    pub command: Option<String>,
    /// The promote command (`command` runner).
    pub promote_command: Option<String>,
    /// Extra environment for the harness.
    pub env: BTreeMap<String, String>,
    /// Harness timeout.
    pub timeout: Duration,
    /// How to take the recipe lock.
    pub lock_wait: LockWait,
    /// The git state repository holding the canonical records, when set.
    pub state_repo: Option<String>,
    /// The report path when set (resolved against the workspace); see [`Settings::report_path`].
    pub report: Option<PathBuf>,
    /// `DRONE_WORKSPACE`, else the working directory.
    pub workspace: PathBuf,
    /// Where per-run folders are made.
    pub work_dir: PathBuf,
    /// Keep the per-run folder.
    pub keep_work_dir: bool,
    /// Upstream token (`upstream_token`, or read from `upstream_token_file`).
    pub upstream_token: Option<Secret>,
    /// Mirror token (`mirror_token`, or read from `mirror_token_file`).
    pub mirror_token: Option<Secret>,
    /// SSH private key, the key itself (`ssh_key`, or read from `ssh_key_file`).
    pub ssh_key: Option<Secret>,
    /// The known_hosts file SSH host keys are checked against (resolved against the workspace);
    /// `None`: `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// The build number, or a local run id.
    pub build: String,
    /// A link to the build, when Drone gave one.
    pub build_link: Option<String>,
    /// What started the run: the Drone event, or `cli`.
    pub trigger: String,
    /// `owner/name` of the Drone repository.
    pub drone_repo: Option<String>,
    /// Sweep: recipes at once.
    pub jobs: Option<usize>,
    /// Sweep: how long one recipe may take in all.
    pub recipe_deadline: Duration,
    /// Sweep: change nothing.
    pub dry_run: bool,
    /// Sweep: run tag mode in-process.
    pub inline: bool,
    /// Sweep: the Drone server URL.
    pub drone_server: Option<String>,
    /// Sweep: the mirrors' forge API base URL (closing PRs merged upstream).
    pub mirror_forge: Option<String>,
    /// Sweep: the Drone API token (`drone_token`, or read from `drone_token_file`).
    pub drone_token: Option<Secret>,
    /// Sweep: the branch of `drone_repo` builds run on.
    pub drone_branch: String,
    /// Sweep: canon-listener's HTTP API, asked whether the listener had a job for a tag. An
    /// `http(s)` base URL with no user info, query or fragment, whose path ends with `/` so
    /// [`url::Url::join`] with a relative path stays under it.
    pub listener_url: Option<url::Url>,
    /// Sweep: the listener's admin token (`listener_token`, or read from `listener_token_file`).
    pub listener_token: Option<Secret>,
    /// Sweep: the age after which a cold run's leftovers are removed.
    pub cleanup_after: Duration,
    /// Sweep: the minimum free space in bytes (`None`: no check).
    pub min_free_bytes: Option<u64>,
    /// Sweep: the exit code when nothing needed doing.
    pub idle_exit_code: u8,
    /// What the settings got wrong without being refused (a variable of the other mode), one
    /// sentence each, for `main` to log.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Returns the report path: the `report` setting, else `default_name` in the workspace.
    pub fn report_path(&self, default_name: &str) -> PathBuf {
        self.report
            .clone()
            .unwrap_or_else(|| self.workspace.join(default_name))
    }

    /// Returns the names of every environment variable that carries a secret setting, so child
    /// processes can be started without them. The `*_file` settings are paths, not secrets, and
    /// are not among them: the file itself is what must be kept private.
    pub fn secret_env_vars() -> impl Iterator<Item = &'static str> {
        KNOWN_SETTINGS
            .iter()
            .filter(|s| s.secret)
            .flat_map(|s| s.env.iter().chain(s.old_env).copied())
    }
}
