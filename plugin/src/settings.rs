//! Settings: raw values from Drone (`PLUGIN_*`, `DRONE_*`, the listener's `CANON_*` build
//! parameters) or from command-line flags, validated into one [`Settings`] value.
//!
//! Two stages, as the house style asks: [`RawSettings`] holds strings exactly as they arrived
//! (an empty value is unset, because Drone sets a `from_secret` whose secret is missing to `""`);
//! [`Settings::parse`] turns them into types and reports every problem at once. Env is read once,
//! in `main`; tests pass a list of pairs to [`Environment::from_pairs`].
//!
//! [`KNOWN_SETTINGS`] is the single list of settings: the README table is rendered from it
//! ([`settings_table_markdown`]) and checked against it by a test, and a packaging check can use
//! it to verify the settings a `.drone.yml` passes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use canon_shared::gate::TestedRef;
use canon_shared::recipe::RecipeName;
use canon_shared::secret::Secret;
use canon_shared::state::LockWait;
use serde::Deserialize;

/// What a setting holds, as the plugin index names types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingType {
    /// Free text.
    String,
    /// `true` or `false`.
    Boolean,
    /// A whole number.
    Number,
    /// A duration like `30m`, `90s`, `1h 30m`.
    Duration,
    /// A list: comma-joined, or JSON when the value starts with `[` or `{`.
    Array,
}

impl SettingType {
    /// Returns the type's name as the README and the plugin card show it.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingType::String => "string",
            SettingType::Boolean => "boolean",
            SettingType::Number => "number",
            SettingType::Duration => "duration",
            SettingType::Array => "array",
        }
    }
}

/// Which mode needs a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Required {
    /// Optional everywhere.
    No,
    /// Required in tag mode.
    TagMode,
    /// Required in every mode.
    Always,
}

/// The documentation of one setting: one README row, one plugin-card property.
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    /// The setting's name in `.drone.yml` (`settings: {name: ...}`), snake_case.
    pub name: &'static str,
    /// Every environment variable it is read from, first wins (the first is always `PLUGIN_*`).
    pub env: &'static [&'static str],
    /// The command-line flag.
    pub flag: &'static str,
    /// The value's type.
    pub kind: SettingType,
    /// The default, as text (empty: no default).
    pub default: &'static str,
    /// True for a secret (use `from_secret`; never logged).
    pub secret: bool,
    /// Which mode needs it.
    pub required: Required,
    /// What it does.
    pub meaning: &'static str,
}

/// Every setting canon-plugin reads, in README order.
pub const KNOWN_SETTINGS: &[SettingDoc] = &[
    SettingDoc {
        name: "mode",
        env: &["PLUGIN_MODE"],
        flag: "--mode",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "`tag` or `sweep`. Unset: picked from `DRONE_BUILD_EVENT` (`tag`, or `custom` with a tag or ref: tag mode; `cron`: sweep).",
    },
    SettingDoc {
        name: "config",
        env: &["PLUGIN_CONFIG", "CANON_ENROLLMENT"],
        flag: "--config",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::Always,
        meaning: "Path of the enrollment file (relative to the workspace).",
    },
    SettingDoc {
        name: "state_dir",
        env: &["PLUGIN_STATE_DIR", "CANON_STATE_DIR"],
        flag: "--state-dir",
        kind: SettingType::String,
        default: "./canon-state",
        secret: false,
        required: Required::No,
        meaning: "The state directory (canonicals, history, locks); mount it as a host volume so it outlives the build.",
    },
    SettingDoc {
        name: "recipe",
        env: &["PLUGIN_RECIPE", "CANON_RECIPE"],
        flag: "--recipe",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::TagMode,
        meaning: "The enrolled recipe to test. Unset: the recipe whose mirror or upstream is `DRONE_REPO`.",
    },
    SettingDoc {
        name: "tag",
        env: &["PLUGIN_TAG", "CANON_TAG", "DRONE_TAG"],
        flag: "--tag",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "The release tag to test and maybe promote. Give `tag` or `ref`, not both.",
    },
    SettingDoc {
        name: "ref",
        env: &["PLUGIN_REF"],
        flag: "--ref",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "A branch or ref of the mirror to test instead of a tag (`main`, `refs/pull/4/head`); never promotes.",
    },
    SettingDoc {
        name: "commit",
        env: &["PLUGIN_COMMIT", "CANON_COMMIT"],
        flag: "--commit",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "The commit the build claims (full hex). With a tag it must be the tag's peeled commit upstream, or nothing runs. On a tag build `DRONE_COMMIT_SHA` is checked the same way.",
    },
    SettingDoc {
        name: "quick",
        env: &["PLUGIN_QUICK"],
        flag: "--quick",
        kind: SettingType::Boolean,
        default: "false",
        secret: false,
        required: Required::No,
        meaning: "A quick run (`CANON_QUICK=1`, `CANON_COLD=0` for the harness); never promotes.",
    },
    SettingDoc {
        name: "runner",
        env: &["PLUGIN_RUNNER"],
        flag: "--runner",
        kind: SettingType::String,
        default: "docker (command when `command` is set)",
        secret: false,
        required: Required::No,
        meaning: "What runs the stage ladder: `command` (your harness), `docker` or `abra` (built in).",
    },
    SettingDoc {
        name: "command",
        env: &["PLUGIN_COMMAND"],
        flag: "--command",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "The harness command for the `command` runner, run with `sh -c` in the checkout; it writes `$CANON_RESULTS`.",
    },
    SettingDoc {
        name: "promote_command",
        env: &["PLUGIN_PROMOTE_COMMAND"],
        flag: "--promote-command",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "`command` runner: run after the gate allowed a promotion and before the canonical is written; failing keeps the canonical.",
    },
    SettingDoc {
        name: "env",
        env: &["PLUGIN_ENV"],
        flag: "--env",
        kind: SettingType::Array,
        default: "[]",
        secret: false,
        required: Required::No,
        meaning: "Extra environment for the harness and the recipe's test command: `KEY=VALUE` items, or a map.",
    },
    SettingDoc {
        name: "timeout",
        env: &["PLUGIN_TIMEOUT"],
        flag: "--timeout",
        kind: SettingType::Duration,
        default: "60m",
        secret: false,
        required: Required::No,
        meaning: "How long the harness command (and the promote command) may run before it is killed and the run is red.",
    },
    SettingDoc {
        name: "lock_wait",
        env: &["PLUGIN_LOCK_WAIT"],
        flag: "--lock-wait",
        kind: SettingType::Duration,
        default: "30m",
        secret: false,
        required: Required::No,
        meaning: "How long to wait for the recipe's lock when another run holds it for its gate; `0s` fails at once.",
    },
    SettingDoc {
        name: "report",
        env: &["PLUGIN_REPORT"],
        flag: "--report",
        kind: SettingType::String,
        default: "canon-report.json",
        secret: false,
        required: Required::No,
        meaning: "Where to write the JSON report (relative paths are under `DRONE_WORKSPACE`, else the working directory).",
    },
    SettingDoc {
        name: "work_dir",
        env: &["PLUGIN_WORK_DIR"],
        flag: "--work-dir",
        kind: SettingType::String,
        default: "the system temp dir",
        secret: false,
        required: Required::No,
        meaning: "Where each run makes its private folder (checkouts, results file); removed after the run.",
    },
    SettingDoc {
        name: "keep_work_dir",
        env: &["PLUGIN_KEEP_WORK_DIR"],
        flag: "--keep-work-dir",
        kind: SettingType::Boolean,
        default: "false",
        secret: false,
        required: Required::No,
        meaning: "Keep the run's private folder for debugging.",
    },
    SettingDoc {
        name: "upstream_token",
        env: &["PLUGIN_UPSTREAM_TOKEN"],
        flag: "--upstream-token",
        kind: SettingType::String,
        default: "",
        secret: true,
        required: Required::No,
        meaning: "Token for HTTPS access to upstream repositories (sent as the basic-auth password).",
    },
    SettingDoc {
        name: "mirror_token",
        env: &["PLUGIN_MIRROR_TOKEN"],
        flag: "--mirror-token",
        kind: SettingType::String,
        default: "",
        secret: true,
        required: Required::No,
        meaning: "Token for HTTPS access to mirror repositories.",
    },
    SettingDoc {
        name: "ssh_key",
        env: &["PLUGIN_SSH_KEY"],
        flag: "--ssh-key",
        kind: SettingType::String,
        default: "",
        secret: true,
        required: Required::No,
        meaning: "A private SSH key (the key itself, not a path) for `ssh://` or `user@host:` repositories.",
    },
    SettingDoc {
        name: "known_hosts",
        env: &["PLUGIN_KNOWN_HOSTS"],
        flag: "--known-hosts",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Path of an OpenSSH `known_hosts` file (relative to the workspace) that alone decides which SSH host keys are trusted. Unset: `~/.ssh/known_hosts` of the user the plugin runs as.",
    },
    SettingDoc {
        name: "mirror_forge",
        env: &["PLUGIN_MIRROR_FORGE"],
        flag: "--mirror-forge",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: base URL of the mirrors' forge API, for closing mirror PRs merged upstream (with `mirror_token`). Unset: the forge the enrollment's mirror URL names.",
    },
    SettingDoc {
        name: "jobs",
        env: &["PLUGIN_JOBS"],
        flag: "--jobs",
        kind: SettingType::Number,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: how many recipes are synced and decided at once (default 4).",
    },
    SettingDoc {
        name: "dry_run",
        env: &["PLUGIN_DRY_RUN"],
        flag: "--dry-run",
        kind: SettingType::Boolean,
        default: "false",
        secret: false,
        required: Required::No,
        meaning: "Sweep: decide and report, change nothing.",
    },
    SettingDoc {
        name: "inline",
        env: &["PLUGIN_INLINE"],
        flag: "--inline",
        kind: SettingType::Boolean,
        default: "false",
        secret: false,
        required: Required::No,
        meaning: "Sweep: run tag mode in-process, one recipe at a time, instead of starting Drone builds.",
    },
    SettingDoc {
        name: "drone_server",
        env: &["PLUGIN_DRONE_SERVER"],
        flag: "--drone-server",
        kind: SettingType::String,
        default: "${DRONE_SYSTEM_PROTO}://${DRONE_SYSTEM_HOST}",
        secret: false,
        required: Required::No,
        meaning: "Sweep: the Drone server that builds are started on.",
    },
    SettingDoc {
        name: "drone_token",
        env: &["PLUGIN_DRONE_TOKEN"],
        flag: "--drone-token",
        kind: SettingType::String,
        default: "",
        secret: true,
        required: Required::No,
        meaning: "Sweep: a Drone API token with write access to `drone_repo` (Drone gives steps none).",
    },
    SettingDoc {
        name: "drone_repo",
        env: &["PLUGIN_DRONE_REPO", "DRONE_REPO"],
        flag: "--drone-repo",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: `owner/name` of the repository whose `canonical` pipeline runs tag mode; in tag mode, finds the recipe when `recipe` is unset.",
    },
    SettingDoc {
        name: "drone_branch",
        env: &["PLUGIN_DRONE_BRANCH"],
        flag: "--drone-branch",
        kind: SettingType::String,
        default: "main",
        secret: false,
        required: Required::No,
        meaning: "Sweep: the branch of `drone_repo` the started builds run on.",
    },
    SettingDoc {
        name: "cleanup_after",
        env: &["PLUGIN_CLEANUP_AFTER"],
        flag: "--cleanup-after",
        kind: SettingType::Duration,
        default: "3h",
        secret: false,
        required: Required::No,
        meaning: "Sweep: remove what cold runs older than this left behind (killed runs); never a `warm-*` canonical.",
    },
    SettingDoc {
        name: "min_free",
        env: &["PLUGIN_MIN_FREE"],
        flag: "--min-free",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: skip a recipe when the state dir or Docker's data root has less free space than this (`10G`, `500M`); unset: no check.",
    },
    SettingDoc {
        name: "idle_exit_code",
        env: &["PLUGIN_IDLE_EXIT_CODE"],
        flag: "--idle-exit-code",
        kind: SettingType::Number,
        default: "0",
        secret: false,
        required: Required::No,
        meaning: "Sweep: the exit code when nothing needed doing; `78` makes Drone skip the remaining steps.",
    },
];

/// Returns the documentation of the setting called `name`.
pub fn setting_doc(name: &str) -> Option<&'static SettingDoc> {
    KNOWN_SETTINGS.iter().find(|s| s.name == name)
}

/// Renders [`KNOWN_SETTINGS`] as the README's Markdown table.
pub fn settings_table_markdown() -> String {
    let mut out = String::from(
        "| setting | env var | flag | type | default | secret | required | meaning |\n|---|---|---|---|---|---|---|---|\n",
    );
    for s in KNOWN_SETTINGS {
        let env = s
            .env
            .iter()
            .map(|e| format!("`{e}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let default = if s.default.is_empty() {
            String::new()
        } else if s.default.contains(' ') {
            s.default.to_string()
        } else {
            format!("`{}`", s.default)
        };
        let required = match s.required {
            Required::No => "no",
            Required::TagMode => "tag mode",
            Required::Always => "yes",
        };
        out.push_str(&format!(
            "| `{}` | {} | `{}` | {} | {} | {} | {} | {} |\n",
            s.name,
            env,
            s.flag,
            s.kind.as_str(),
            default,
            if s.secret { "yes" } else { "no" },
            required,
            s.meaning.replace('|', "\\|"),
        ));
    }
    out
}

/// Raw settings exactly as they arrived (strings; `None` or `""` is unset). Read from `PLUGIN_*`
/// with envy, and from the `run` subcommand's flags (which win).
#[derive(Debug, Default, Clone, Deserialize, clap::Args)]
pub struct RawSettings {
    /// `tag` or `sweep`; unset: picked from `DRONE_BUILD_EVENT`.
    #[arg(long)]
    pub mode: Option<String>,
    /// The enrollment file.
    #[arg(long)]
    pub config: Option<String>,
    /// The state directory.
    #[arg(long)]
    pub state_dir: Option<String>,
    /// The recipe to test.
    #[arg(long)]
    pub recipe: Option<String>,
    /// The tag to test and maybe promote.
    #[arg(long, conflicts_with = "git_ref")]
    pub tag: Option<String>,
    /// A branch or ref to test instead of a tag (never promotes).
    #[serde(rename = "ref")]
    #[arg(long = "ref", id = "git_ref")]
    pub git_ref: Option<String>,
    /// The commit the build claims (full hex).
    #[arg(long)]
    pub commit: Option<String>,
    /// A quick run (never promotes).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub quick: Option<String>,
    /// `command`, `docker` or `abra`.
    #[arg(long)]
    pub runner: Option<String>,
    /// The harness command (`command` runner).
    #[arg(long)]
    pub command: Option<String>,
    /// Run after the gate allowed a promotion (`command` runner).
    #[arg(long)]
    pub promote_command: Option<String>,
    /// Extra environment for the harness: `KEY=VALUE,...` or JSON.
    #[arg(long)]
    pub env: Option<String>,
    /// How long the harness may run (e.g. `60m`).
    #[arg(long)]
    pub timeout: Option<String>,
    /// How long to wait for the recipe lock (e.g. `30m`; `0s` fails at once).
    #[arg(long)]
    pub lock_wait: Option<String>,
    /// Where to write the JSON report.
    #[arg(long)]
    pub report: Option<String>,
    /// Where per-run folders are made.
    #[arg(long)]
    pub work_dir: Option<String>,
    /// Keep the per-run folder.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub keep_work_dir: Option<String>,
    /// Token for upstream repositories (prefer `PLUGIN_UPSTREAM_TOKEN`: flags show in `ps`).
    #[arg(long)]
    pub upstream_token: Option<String>,
    /// Token for mirror repositories (prefer `PLUGIN_MIRROR_TOKEN`).
    #[arg(long)]
    pub mirror_token: Option<String>,
    /// A private SSH key (prefer `PLUGIN_SSH_KEY`).
    #[arg(long)]
    pub ssh_key: Option<String>,
    /// An OpenSSH known_hosts file trusted for SSH host keys (instead of `~/.ssh/known_hosts`).
    #[arg(long)]
    pub known_hosts: Option<String>,
    /// Sweep: base URL of the mirrors' forge API.
    #[arg(long)]
    pub mirror_forge: Option<String>,
    /// Sweep: recipes at once.
    #[arg(long)]
    pub jobs: Option<String>,
    /// Sweep: change nothing.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub dry_run: Option<String>,
    /// Sweep: run tag mode in-process.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub inline: Option<String>,
    /// Sweep: the Drone server.
    #[arg(long)]
    pub drone_server: Option<String>,
    /// Sweep: a Drone API token (prefer `PLUGIN_DRONE_TOKEN`: flags show in `ps`).
    #[arg(long)]
    pub drone_token: Option<String>,
    /// Sweep: `owner/name` of the Drone repository.
    #[arg(long)]
    pub drone_repo: Option<String>,
    /// Sweep: the branch of the Drone repository.
    #[arg(long)]
    pub drone_branch: Option<String>,
    /// Sweep: the age after which a cold run's leftovers are removed.
    #[arg(long)]
    pub cleanup_after: Option<String>,
    /// Sweep: the minimum free space (e.g. `10G`).
    #[arg(long)]
    pub min_free: Option<String>,
    /// Sweep: the exit code when nothing needed doing.
    #[arg(long)]
    pub idle_exit_code: Option<String>,
}

impl RawSettings {
    /// Returns `self` with every unset value taken from `fallback` (flags over `PLUGIN_*`).
    pub fn or(self, fallback: RawSettings) -> RawSettings {
        fn pick(a: Option<String>, b: Option<String>) -> Option<String> {
            unset_if_empty(a).or(unset_if_empty(b))
        }
        RawSettings {
            mode: pick(self.mode, fallback.mode),
            config: pick(self.config, fallback.config),
            state_dir: pick(self.state_dir, fallback.state_dir),
            recipe: pick(self.recipe, fallback.recipe),
            tag: pick(self.tag, fallback.tag),
            git_ref: pick(self.git_ref, fallback.git_ref),
            commit: pick(self.commit, fallback.commit),
            quick: pick(self.quick, fallback.quick),
            runner: pick(self.runner, fallback.runner),
            command: pick(self.command, fallback.command),
            promote_command: pick(self.promote_command, fallback.promote_command),
            env: pick(self.env, fallback.env),
            timeout: pick(self.timeout, fallback.timeout),
            lock_wait: pick(self.lock_wait, fallback.lock_wait),
            report: pick(self.report, fallback.report),
            work_dir: pick(self.work_dir, fallback.work_dir),
            keep_work_dir: pick(self.keep_work_dir, fallback.keep_work_dir),
            upstream_token: pick(self.upstream_token, fallback.upstream_token),
            mirror_token: pick(self.mirror_token, fallback.mirror_token),
            ssh_key: pick(self.ssh_key, fallback.ssh_key),
            known_hosts: pick(self.known_hosts, fallback.known_hosts),
            jobs: pick(self.jobs, fallback.jobs),
            dry_run: pick(self.dry_run, fallback.dry_run),
            inline: pick(self.inline, fallback.inline),
            drone_server: pick(self.drone_server, fallback.drone_server),
            mirror_forge: pick(self.mirror_forge, fallback.mirror_forge),
            drone_token: pick(self.drone_token, fallback.drone_token),
            drone_repo: pick(self.drone_repo, fallback.drone_repo),
            drone_branch: pick(self.drone_branch, fallback.drone_branch),
            cleanup_after: pick(self.cleanup_after, fallback.cleanup_after),
            min_free: pick(self.min_free, fallback.min_free),
            idle_exit_code: pick(self.idle_exit_code, fallback.idle_exit_code),
        }
    }
}

/// Build metadata from Drone (`DRONE_*`) and the listener's build parameters (`CANON_*`).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct DroneMeta {
    /// `push`, `pull_request`, `tag`, `promote`, `rollback`, `cron` or `custom`.
    pub drone_build_event: Option<String>,
    /// The tag, set only when the build's ref is `refs/tags/...`.
    pub drone_tag: Option<String>,
    /// The build's commit.
    pub drone_commit_sha: Option<String>,
    /// The build's ref, e.g. `refs/tags/1.2.0+3.4.5`.
    pub drone_commit_ref: Option<String>,
    /// The build number.
    pub drone_build_number: Option<String>,
    /// A link to the build.
    pub drone_build_link: Option<String>,
    /// `owner/name` of the repository the build runs in.
    pub drone_repo: Option<String>,
    /// The workspace (the working directory of a plugin step).
    pub drone_workspace: Option<String>,
    /// The listener's build parameter: the recipe.
    pub canon_recipe: Option<String>,
    /// The listener's build parameter: the tag.
    pub canon_tag: Option<String>,
    /// The listener's build parameter: the tag's commit.
    pub canon_commit: Option<String>,
    /// The enrollment file (the listener's variable name, accepted as a fallback).
    pub canon_enrollment: Option<String>,
    /// The state directory (accepted as a fallback).
    pub canon_state_dir: Option<String>,
    /// `http` or `https`: with the host, the Drone server's URL.
    pub drone_system_proto: Option<String>,
    /// The Drone server's host name.
    pub drone_system_host: Option<String>,
}

/// Everything read from the process environment, once.
#[derive(Debug, Default, Clone)]
pub struct Environment {
    /// `PLUGIN_*` values.
    pub plugin: RawSettings,
    /// `DRONE_*` and `CANON_*` values.
    pub drone: DroneMeta,
    /// `PLUGIN_*` names that are not known settings (warned about: probably typos).
    pub unknown: Vec<String>,
}

/// The environment could not be read (envy failing on the shape, which string fields make
/// unlikely).
#[derive(Debug, thiserror::Error)]
#[error("cannot read settings from the environment: {0}")]
pub struct EnvironmentError(#[from] envy::Error);

impl Environment {
    /// Reads settings from `KEY=VALUE` pairs (the process env in `main`, a list in tests).
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self, EnvironmentError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            // Drone sets a `from_secret` whose secret is missing to "": that is unset.
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let plugin: RawSettings = envy::prefixed("PLUGIN_").from_iter(pairs.iter().cloned())?;
        let drone: DroneMeta = envy::from_iter(pairs.iter().cloned())?;
        let unknown = pairs
            .iter()
            .filter_map(|(k, _)| k.strip_prefix("PLUGIN_"))
            .filter(|name| setting_doc(&name.to_ascii_lowercase()).is_none())
            .map(|name| format!("PLUGIN_{name}"))
            .collect();
        Ok(Self {
            plugin,
            drone,
            unknown,
        })
    }

    /// Reads the process environment (variables that are not UTF-8 are ignored).
    pub fn from_process() -> Result<Self, EnvironmentError> {
        // `std::env::vars` panics on a non-UTF-8 variable; skip those instead.
        Self::from_pairs(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }
}

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
    pub commit: String,
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
    /// The report path when set (resolved against the workspace); see [`Settings::report_path`].
    pub report: Option<PathBuf>,
    /// `DRONE_WORKSPACE`, else the working directory.
    pub workspace: PathBuf,
    /// Where per-run folders are made.
    pub work_dir: PathBuf,
    /// Keep the per-run folder.
    pub keep_work_dir: bool,
    /// Upstream token.
    pub upstream_token: Option<Secret>,
    /// Mirror token.
    pub mirror_token: Option<Secret>,
    /// SSH private key (the key itself).
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
    /// Sweep: change nothing.
    pub dry_run: bool,
    /// Sweep: run tag mode in-process.
    pub inline: bool,
    /// Sweep: the Drone server URL.
    pub drone_server: Option<String>,
    /// Sweep: the mirrors' forge API base URL (closing PRs merged upstream).
    pub mirror_forge: Option<String>,
    /// Sweep: the Drone API token.
    pub drone_token: Option<Secret>,
    /// Sweep: the branch of `drone_repo` builds run on.
    pub drone_branch: String,
    /// Sweep: the age after which a cold run's leftovers are removed.
    pub cleanup_after: Duration,
    /// Sweep: the minimum free space in bytes (`None`: no check).
    pub min_free_bytes: Option<u64>,
    /// Sweep: the exit code when nothing needed doing.
    pub idle_exit_code: u8,
}

/// Bad settings: every problem, one per line. Exit code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError {
    /// Each problem as a sentence naming the setting.
    pub problems: Vec<String>,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s) with the settings:", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Returns `None` for `None` or an empty (or all-blank) value.
fn unset_if_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// Parses a boolean setting: `true` or `false` (any case).
pub fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "`{name}` must be true or false, not {:?}",
            value.trim()
        )),
    }
}

/// Parses a duration setting like `30m`, `90s`, `1h 30m`.
pub fn parse_duration(name: &str, value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value.trim())
        .map_err(|e| format!("`{name}` must be a duration like 30m or 90s, not {value:?}: {e}"))
}

/// Parses a list setting: JSON when it starts with `[` or `{` (Drone turns lists with maps, and
/// maps, into JSON), otherwise comma-joined (Drone's encoding of a list of scalars). A JSON map
/// becomes `KEY=VALUE` items.
pub fn parse_list(name: &str, value: &str) -> Result<Vec<String>, String> {
    let v = value.trim();
    if v.starts_with('[') || v.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(v)
            .map_err(|e| format!("`{name}` starts like JSON but is not valid JSON: {e}"))?;
        let scalar = |x: &serde_json::Value| match x {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            serde_json::Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!(
                "`{name}`: items must be strings, numbers or booleans, not {other}"
            )),
        };
        return match json {
            serde_json::Value::Array(items) => items.iter().map(scalar).collect(),
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, x)| scalar(x).map(|x| format!("{k}={x}")))
                .collect(),
            _ => Err(format!("`{name}` must be a list")),
        };
    }
    Ok(v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect())
}

/// Parses `KEY=VALUE` items into an environment map; keys must be shell-style names.
fn parse_env_items(name: &str, items: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!("`{name}`: {item:?} is not KEY=VALUE"));
        };
        let valid = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("`{name}`: {k:?} is not a valid variable name"));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Parses a size: bytes, or a number with `K`, `M`, `G` or `T` (powers of 1024; `KB`, `KiB`,
/// `GB`, `GiB` and lower case are read the same).
pub fn parse_size(value: &str) -> Option<u64> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: f64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    let bytes = num * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64)
}

/// Returns the lower-cased commit when it is full hex (40 for SHA-1, 64 for SHA-256).
pub fn parse_commit(value: &str) -> Option<String> {
    let v = value.trim();
    ((v.len() == 40 || v.len() == 64) && v.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| v.to_ascii_lowercase())
}

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

    /// Returns the report path: the `report` setting, else `default_name` in the workspace.
    pub fn report_path(&self, default_name: &str) -> PathBuf {
        self.report
            .clone()
            .unwrap_or_else(|| self.workspace.join(default_name))
    }

    /// Returns the names of every environment variable that carries a secret setting, so child
    /// processes can be started without them.
    pub fn secret_env_vars() -> impl Iterator<Item = &'static str> {
        KNOWN_SETTINGS
            .iter()
            .filter(|s| s.secret)
            .flat_map(|s| s.env.iter().copied())
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
    fn sweep_settings_fall_back_to_drone_metadata_and_sizes_parse() {
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
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("500 mb"), Some(500 << 20));
        assert_eq!(parse_size("ten"), None);
        assert_eq!(parse_size("5X"), None);
    }

    #[test]
    fn lists_are_comma_joined_or_json() {
        assert_eq!(parse_list("x", "a, b,,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(parse_list("x", r#"["a,b", 1]"#).unwrap(), ["a,b", "1"]);
        assert_eq!(parse_list("x", r#"{"K":"v"}"#).unwrap(), ["K=v"]);
        assert!(parse_list("x", "[oops")
            .unwrap_err()
            .contains("not valid JSON"));
    }

    #[test]
    fn unknown_plugin_settings_are_listed_and_durations_parse() {
        let e = env(&[("PLUGIN_PROMOTE_COMAND", "x"), ("PLUGIN_RECIPE", "a")]);
        assert_eq!(e.unknown, ["PLUGIN_PROMOTE_COMAND"]);
        assert_eq!(
            parse_duration("t", "1h 30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_duration("t", "0s").unwrap(), Duration::ZERO);
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
    fn secret_settings_are_known() {
        let secrets: Vec<_> = Settings::secret_env_vars().collect();
        assert_eq!(
            secrets,
            [
                "PLUGIN_UPSTREAM_TOKEN",
                "PLUGIN_MIRROR_TOKEN",
                "PLUGIN_SSH_KEY",
                "PLUGIN_DRONE_TOKEN"
            ]
        );
        for s in KNOWN_SETTINGS {
            assert_eq!(s.env[0], format!("PLUGIN_{}", s.name.to_uppercase()));
            assert_eq!(s.flag, format!("--{}", s.name.replace('_', "-")));
        }
    }
}
