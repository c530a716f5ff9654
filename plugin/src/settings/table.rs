//! The settings table: every setting canon-plugin reads, with its environment variables, flag,
//! type, default, meaning, flag help and the modes and subcommands that read it, in one list
//! ([`KNOWN_SETTINGS`]). It is the one place a setting is declared: the flags of `run`, `sweep`,
//! `canonical`, `state export`, `mirror-sync` and `recipe plan`, the `PLUGIN_*` variables read
//! (and the old names still accepted), the defaults validation falls back to, which settings a
//! mode refuses, the settings reference's table and the secrets kept from child processes all come from it.
//!
//! Separate from parsing because it is documentation that code checks: the settings reference's
//! table and the plugin card's properties are rendered from it ([`settings_table_markdown`],
//! [`plugin_card_properties_yaml`]) and tests hold `docs/reference/plugin-settings.md` and
//! `plugin/card.yaml` equal to them;
//! [`super::Environment`] uses it to read `PLUGIN_*` and warn about unknown names,
//! [`super::RawSettings`] and [`super::SubcommandFlags`] to build the flags, and
//! [`super::Settings::secret_env_vars`] to keep secrets out of child processes.

pub use canon_shared::settings::SettingType;

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

/// Where a setting is read: one of the two modes Drone runs (each also a subcommand), or the
/// flags one or more other subcommands share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Tag mode: `canon-plugin run`, or a Drone tag, custom, pull request or push build.
    Tag,
    /// The sweep: `canon-plugin sweep`, or a Drone cron build.
    Sweep,
    /// Where `canonical show|pin|unpin|badge` finds the records.
    CanonicalTarget,
    /// Who `canonical pin|unpin` records.
    CanonicalBy,
    /// How `canonical rewarm` deploys the warm canonical again: the runner and its promote
    /// step, the hold's wait, the run folder and the mirror's credentials.
    CanonicalRewarm,
    /// What `state export` exports.
    StateExport,
    /// `mirror-sync`: the state dir of its caches and the credentials of both sides.
    MirrorSync,
    /// `recipe plan`: the credentials of the mirror it fetches.
    RecipePlan,
}

impl Use {
    /// Returns the subcommands (as typed after `canon-plugin`) that read the settings of `self`.
    pub fn commands(self) -> &'static [&'static str] {
        match self {
            Use::Tag => &["run"],
            Use::Sweep => &["sweep", "check"],
            Use::CanonicalTarget => &[
                "canonical show",
                "canonical pin",
                "canonical badge",
                "canonical unpin",
                "canonical rewarm",
            ],
            Use::CanonicalBy => &["canonical pin", "canonical unpin"],
            Use::CanonicalRewarm => &["canonical rewarm"],
            Use::StateExport => &["state export"],
            Use::MirrorSync => &["mirror-sync"],
            Use::RecipePlan => &["recipe plan"],
        }
    }

    /// Returns true for the two modes Drone runs, whose settings are plugin settings (a README
    /// row, a plugin-card property) and whose secrets may be given as flags.
    pub fn is_mode(self) -> bool {
        matches!(self, Use::Tag | Use::Sweep)
    }

    /// Returns how an error names the place: `tag mode (canon-plugin run)`.
    pub fn describe(self) -> String {
        match self {
            Use::Tag => "tag mode (`canon-plugin run`)".to_string(),
            Use::Sweep => "the sweep (`canon-plugin sweep`)".to_string(),
            other => other
                .commands()
                .iter()
                .map(|c| format!("`canon-plugin {c}`"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// One setting: its variables and flag, one README row, one plugin-card property (for the
/// settings of a mode).
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    /// The setting's name in `.drone.yml` (`settings: {name: ...}`), snake_case.
    pub name: &'static str,
    /// Every environment variable it is read from, first wins (the first is always `PLUGIN_*`;
    /// the others are what Drone or the system sets, like `DRONE_TAG` or `USER`).
    pub env: &'static [&'static str],
    /// Names it was read from before every canon-plugin variable was `PLUGIN_*`: still read
    /// after [`SettingDoc::env`] until the next release, each with a warning naming the new one.
    pub old_env: &'static [&'static str],
    /// The command-line flag.
    pub flag: &'static str,
    /// The value's type.
    pub kind: SettingType,
    /// The default, as text (empty: no default). For booleans, numbers and durations it is the
    /// value validation falls back to, so it must parse (a unit test holds every one to that).
    pub default: &'static str,
    /// True for a secret (use `from_secret`; never logged). Outside the two modes a secret has
    /// no flag, only its variable: flags show in process listings.
    pub secret: bool,
    /// Which mode needs it.
    pub required: Required,
    /// What it does: the settings reference's and the plugin card's words.
    pub meaning: &'static str,
    /// The flag's one-line help (`canon-plugin run --help`).
    pub help: &'static str,
    /// The modes and subcommands that read it. A flag of the other mode is refused; so is its
    /// variable when [`SettingDoc::refused_elsewhere`] says so, else it is warned about.
    pub used_by: &'static [Use],
    /// True when the mode that does not read it must refuse its variable rather than warn:
    /// ignoring it would make the run do what the setting asked it not to (tag mode given
    /// `dry_run: true` would run the harness and write history; a sweep given a `recipe`, a
    /// `tag` or `quick: true` would test every recipe and promote). Drone passes every
    /// `settings:` key of a step, and pipelines share settings between a tag and a cron step, so
    /// the others only warn.
    pub refused_elsewhere: bool,
}

impl SettingDoc {
    /// Returns true when `place` reads the setting.
    pub fn used_in(&self, place: Use) -> bool {
        self.used_by.contains(&place)
    }

    /// Returns true for a setting of a mode (Drone's settings): a README row, a card property.
    pub fn is_plugin_setting(&self) -> bool {
        self.used_by.iter().any(|u| u.is_mode())
    }

    /// Returns true when `place` has the setting's flag: a secret is a variable only outside
    /// the two modes.
    pub fn has_flag_in(&self, place: Use) -> bool {
        self.used_in(place) && !self.flag.is_empty() && (place.is_mode() || !self.secret)
    }

    /// Returns how problems name the setting: `` `name` (VARIABLE or --flag) ``.
    pub fn label(&self) -> String {
        format!(
            "`{}` ({} or {})",
            self.name,
            self.env.join(" or "),
            self.flag
        )
    }

    /// Returns the places that read it, as an error names them.
    pub fn belongs_to(&self) -> String {
        self.used_by
            .iter()
            .map(|u| u.describe())
            .collect::<Vec<_>>()
            .join(" and ")
    }

    /// Returns the flag's help: the table's sentence without its final period (as clap shows
    /// doc comments), then its variables and default as clap shows its own.
    pub fn flag_help(&self) -> String {
        let mut help = self.help.strip_suffix('.').unwrap_or(self.help).to_string();
        help.push_str(&format!(" [env: {}]", self.env.join(", ")));
        // An empty list is no default worth showing.
        if !self.default.is_empty() && self.default != "[]" {
            help.push_str(&format!(" [default: {}]", self.default));
        }
        help
    }
}

/// The places that read a setting of both modes.
const MODES: &[Use] = &[Use::Tag, Use::Sweep];

/// Every setting canon-plugin reads: the plugin settings in README order, then the settings only
/// other subcommands read.
pub const KNOWN_SETTINGS: &[SettingDoc] = &[
    SettingDoc {
        name: "mode",
        env: &["PLUGIN_MODE"],
        old_env: &[],
        flag: "--mode",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "`tag` or `sweep`. Unset: picked from `DRONE_BUILD_EVENT` (`tag`, or `custom` with a tag or ref: tag mode; `cron`: sweep).",
        help: "`tag` or `sweep`; unset: picked from `DRONE_BUILD_EVENT`.",
        used_by: MODES,
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "config",
        env: &["PLUGIN_CONFIG"],
        old_env: &["CANON_ENROLLMENT"],
        flag: "--config",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::Always,
        meaning: "Path of the enrollment file (relative to the workspace).",
        help: "The enrollment file.",
        used_by: MODES,
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "state_dir",
        env: &["PLUGIN_STATE_DIR"],
        old_env: &["CANON_STATE_DIR"],
        flag: "--state-dir",
        kind: SettingType::String,
        default: "./canon-state",
        secret: false,
        required: Required::No,
        meaning: "The state directory (canonicals, history, locks); mount it as a host volume so it outlives the build.",
        help: "The state directory.",
        used_by: &[Use::Tag, Use::Sweep, Use::CanonicalTarget, Use::StateExport, Use::MirrorSync],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "recipe",
        env: &["PLUGIN_RECIPE", "CANON_RECIPE"],
        old_env: &[],
        flag: "--recipe",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::TagMode,
        meaning: "The enrolled recipe to test. Unset: the recipe whose mirror or upstream is `DRONE_REPO`.",
        help: "The recipe to test.",
        used_by: &[Use::Tag],
        refused_elsewhere: true,
    },
    SettingDoc {
        name: "tag",
        env: &["PLUGIN_TAG", "CANON_TAG", "DRONE_TAG"],
        old_env: &[],
        flag: "--tag",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "The release tag to test and maybe promote. Give `tag` or `ref`, not both.",
        help: "The tag to test and maybe promote.",
        used_by: &[Use::Tag],
        refused_elsewhere: true,
    },
    SettingDoc {
        name: "ref",
        env: &["PLUGIN_REF"],
        old_env: &[],
        flag: "--ref",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "A branch or ref of the mirror to test instead of a tag (`main`, `refs/pull/4/head`); never promotes.",
        help: "A branch or ref to test instead of a tag (never promotes).",
        used_by: &[Use::Tag],
        refused_elsewhere: true,
    },
    SettingDoc {
        name: "commit",
        env: &["PLUGIN_COMMIT", "CANON_COMMIT"],
        old_env: &[],
        flag: "--commit",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "The commit the build claims (full hex). With a tag it must be the tag's peeled commit upstream, or nothing runs. On a tag build `DRONE_COMMIT_SHA` is checked the same way.",
        help: "The commit the build claims (full hex).",
        used_by: &[Use::Tag],
        refused_elsewhere: true,
    },
    SettingDoc {
        name: "init_state",
        env: &["PLUGIN_INIT_STATE"],
        old_env: &[],
        flag: "--init-state",
        kind: SettingType::Boolean,
        default: "false",
        secret: false,
        required: Required::No,
        meaning: "Create the state directory when it does not exist (the first promote on a host; flag also `--init`). Unset, a missing state directory is an error, so a mistyped path never starts an empty state.",
        help: "Create the state directory when it does not exist (the first run).",
        used_by: &[Use::Tag, Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "quick",
        env: &["PLUGIN_QUICK"],
        old_env: &[],
        flag: "--quick",
        kind: SettingType::Boolean,
        default: "false",
        secret: false,
        required: Required::No,
        meaning: "A quick run (`CANON_QUICK=1`, `CANON_COLD=0` for the harness); never promotes.",
        help: "A quick run (never promotes).",
        used_by: &[Use::Tag],
        refused_elsewhere: true,
    },
    SettingDoc {
        name: "warm",
        env: &["PLUGIN_WARM"],
        old_env: &[],
        flag: "--warm",
        kind: SettingType::Boolean,
        default: "true",
        secret: false,
        required: Required::No,
        meaning: "A `ref` run (a pull request or branch) copies the canonical's warm volumes and upgrades the head over them, when this host holds them; `false` (the flag `--cold`) installs fresh. Tags always run cold.",
        help: "A ref run starts from the canonical's warm data when there is some (default true).",
        used_by: &[Use::Tag],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "runner",
        env: &["PLUGIN_RUNNER"],
        old_env: &[],
        flag: "--runner",
        kind: SettingType::String,
        default: "docker (command when `command` is set)",
        secret: false,
        required: Required::No,
        meaning: "What runs the stage ladder: `command` (your harness), `docker` or `abra` (built in).",
        help: "`command`, `docker` or `abra`.",
        used_by: &[Use::Tag, Use::Sweep, Use::CanonicalRewarm],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "command",
        env: &["PLUGIN_COMMAND"],
        old_env: &[],
        flag: "--command",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "The harness command for the `command` runner, run with `sh -c` in the checkout; it writes `$CANON_RESULTS`.",
        help: "The harness command (`command` runner).",
        used_by: MODES,
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "promote_command",
        env: &["PLUGIN_PROMOTE_COMMAND"],
        old_env: &[],
        flag: "--promote-command",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "`command` runner: run after the gate allowed a promotion and before the canonical is written; failing keeps the canonical.",
        help: "Run after the gate allowed a promotion (`command` runner).",
        used_by: &[Use::Tag, Use::Sweep, Use::CanonicalRewarm],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "env",
        env: &["PLUGIN_ENV"],
        old_env: &[],
        flag: "--env",
        kind: SettingType::Array,
        default: "[]",
        secret: false,
        required: Required::No,
        meaning: "Extra environment for the harness and the recipe's test command: `KEY=VALUE` items, or a map.",
        help: "Extra environment for the harness: `KEY=VALUE,...` or JSON.",
        used_by: MODES,
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "timeout",
        env: &["PLUGIN_TIMEOUT"],
        old_env: &[],
        flag: "--timeout",
        kind: SettingType::Duration,
        default: "60m",
        secret: false,
        required: Required::No,
        meaning: "How long the harness command (and the promote command) may run before it is killed and the run is red.",
        help: "How long the harness may run (e.g. `60m`).",
        used_by: &[Use::Tag, Use::Sweep, Use::CanonicalRewarm],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "state_repo",
        env: &["PLUGIN_STATE_REPO"],
        old_env: &["CANON_STATE_REPO"],
        flag: "--state-repo",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "A git repository (URL or path) that holds the canonical records and their history for every runner host, pushed with the mirror credentials (`mirror_token`, `ssh_key`). Unset: the state dir holds them.",
        help: "The git state repository (instead of the state dir's records).",
        used_by: &[Use::Tag, Use::Sweep, Use::CanonicalTarget],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "lock_wait",
        env: &["PLUGIN_LOCK_WAIT"],
        old_env: &[],
        flag: "--lock-wait",
        kind: SettingType::Duration,
        default: "30m",
        secret: false,
        required: Required::No,
        meaning: "How long to wait for the recipe's lock when another run holds it for its gate; `0s` fails at once.",
        help: "How long to wait for the recipe lock (e.g. `30m`; `0s` fails at once).",
        used_by: &[Use::Tag, Use::Sweep, Use::CanonicalRewarm],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "report",
        env: &["PLUGIN_REPORT"],
        old_env: &[],
        flag: "--report",
        kind: SettingType::String,
        default: "canon-report.json",
        secret: false,
        required: Required::No,
        meaning: "Where to write the JSON report (relative paths are under `DRONE_WORKSPACE`, else the working directory).",
        help: "Where to write the JSON report.",
        used_by: MODES,
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "work_dir",
        env: &["PLUGIN_WORK_DIR"],
        old_env: &[],
        flag: "--work-dir",
        kind: SettingType::String,
        default: "the system temp dir",
        secret: false,
        required: Required::No,
        meaning: "Where each run makes its private folder (checkouts, results file); removed after the run.",
        help: "Where per-run folders are made.",
        used_by: &[Use::Tag, Use::Sweep, Use::CanonicalRewarm],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "keep_work_dir",
        env: &["PLUGIN_KEEP_WORK_DIR"],
        old_env: &[],
        flag: "--keep-work-dir",
        kind: SettingType::Boolean,
        default: "false",
        secret: false,
        required: Required::No,
        meaning: "Keep the run's private folder for debugging.",
        help: "Keep the per-run folder.",
        used_by: MODES,
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "upstream_token",
        env: &["PLUGIN_UPSTREAM_TOKEN"],
        old_env: &["CANON_UPSTREAM_TOKEN"],
        flag: "--upstream-token",
        kind: SettingType::String,
        default: "",
        secret: true,
        required: Required::No,
        meaning: "Token for HTTPS access to upstream repositories (sent as the basic-auth password).",
        help: "Token for upstream repositories (prefer `--upstream-token-file`: flags show in `ps`).",
        used_by: &[Use::Tag, Use::Sweep, Use::MirrorSync, Use::RecipePlan],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "upstream_token_file",
        env: &["PLUGIN_UPSTREAM_TOKEN_FILE"],
        old_env: &[],
        flag: "--upstream-token-file",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Path of a file holding `upstream_token` (relative to the workspace; surrounding whitespace is trimmed). Give one of the two; on a command line prefer this to `--upstream-token`.",
        help: "A file holding the upstream token (trimmed).",
        used_by: MODES,
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "mirror_token",
        env: &["PLUGIN_MIRROR_TOKEN"],
        old_env: &["CANON_MIRROR_TOKEN"],
        flag: "--mirror-token",
        kind: SettingType::String,
        default: "",
        secret: true,
        required: Required::No,
        meaning: "Token for HTTPS access to mirror repositories.",
        help: "Token for mirror repositories (prefer `--mirror-token-file`: flags show in `ps`).",
        used_by: &[Use::Tag, Use::Sweep, Use::MirrorSync, Use::RecipePlan, Use::CanonicalRewarm],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "mirror_token_file",
        env: &["PLUGIN_MIRROR_TOKEN_FILE"],
        old_env: &[],
        flag: "--mirror-token-file",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Path of a file holding `mirror_token` (relative to the workspace; surrounding whitespace is trimmed). Give one of the two; on a command line prefer this to `--mirror-token`.",
        help: "A file holding the mirror token (trimmed).",
        used_by: &[Use::Tag, Use::Sweep, Use::CanonicalTarget],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "ssh_key",
        env: &["PLUGIN_SSH_KEY"],
        old_env: &[],
        flag: "--ssh-key",
        kind: SettingType::String,
        default: "",
        secret: true,
        required: Required::No,
        meaning: "A private SSH key (the key itself, not a path) for `ssh://` or `user@host:` repositories.",
        help: "A private SSH key, the key itself (prefer `--ssh-key-file`: flags show in `ps`).",
        used_by: MODES,
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "ssh_key_file",
        env: &["PLUGIN_SSH_KEY_FILE"],
        old_env: &[],
        flag: "--ssh-key-file",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Path of a file holding `ssh_key`, read as is (relative to the workspace). Give one of the two; on a command line prefer this to `--ssh-key`.",
        help: "A file holding the private SSH key (read as is).",
        used_by: &[Use::Tag, Use::Sweep, Use::CanonicalTarget, Use::MirrorSync, Use::RecipePlan],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "known_hosts",
        env: &["PLUGIN_KNOWN_HOSTS"],
        old_env: &[],
        flag: "--known-hosts",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Path of an OpenSSH `known_hosts` file (relative to the workspace) that alone decides which SSH host keys are trusted. Unset: `~/.ssh/known_hosts` of the user the plugin runs as.",
        help: "An OpenSSH known_hosts file trusted for SSH host keys (instead of `~/.ssh/known_hosts`).",
        used_by: &[Use::Tag, Use::Sweep, Use::CanonicalRewarm],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "mirror_forge",
        env: &["PLUGIN_MIRROR_FORGE"],
        old_env: &[],
        flag: "--mirror-forge",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: base URL of the mirrors' forge API, for closing mirror PRs merged upstream (with `mirror_token`). Unset: the forge the enrollment's mirror URL names.",
        help: "Sweep: base URL of the mirrors' forge API.",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "jobs",
        env: &["PLUGIN_JOBS"],
        old_env: &[],
        flag: "--jobs",
        kind: SettingType::Number,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: how many recipes are synced and decided at once (default 4).",
        help: "Sweep: recipes at once.",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "recipe_deadline",
        env: &["PLUGIN_RECIPE_DEADLINE"],
        old_env: &[],
        flag: "--recipe-deadline",
        kind: SettingType::Duration,
        default: "3h",
        secret: false,
        required: Required::No,
        meaning: "Sweep: how long one recipe may take in all (sync, decision, and its build start or inline run). Past it the recipe is reported failed and the sweep goes on with the others; a run's own stage timeouts still apply.",
        help: "Sweep: how long one recipe may take in all.",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "dry_run",
        env: &["PLUGIN_DRY_RUN"],
        old_env: &[],
        flag: "--dry-run",
        kind: SettingType::Boolean,
        default: "false",
        secret: false,
        required: Required::No,
        meaning: "Sweep: decide and report, change nothing.",
        help: "Sweep: change nothing.",
        used_by: &[Use::Sweep],
        refused_elsewhere: true,
    },
    SettingDoc {
        name: "inline",
        env: &["PLUGIN_INLINE"],
        old_env: &[],
        flag: "--inline",
        kind: SettingType::Boolean,
        default: "false",
        secret: false,
        required: Required::No,
        meaning: "Sweep: run tag mode in-process, one recipe at a time, instead of starting Drone builds.",
        help: "Sweep: run tag mode in-process.",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "drone_server",
        env: &["PLUGIN_DRONE_SERVER"],
        old_env: &[],
        flag: "--drone-server",
        kind: SettingType::String,
        default: "${DRONE_SYSTEM_PROTO}://${DRONE_SYSTEM_HOST}",
        secret: false,
        required: Required::No,
        meaning: "Sweep: the Drone server that builds are started on.",
        help: "Sweep: the Drone server.",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "drone_token",
        env: &["PLUGIN_DRONE_TOKEN"],
        old_env: &[],
        flag: "--drone-token",
        kind: SettingType::String,
        default: "",
        secret: true,
        required: Required::No,
        meaning: "Sweep: a Drone API token with write access to `drone_repo` (Drone gives steps none).",
        help: "Sweep: a Drone API token (prefer `--drone-token-file`: flags show in `ps`).",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "drone_token_file",
        env: &["PLUGIN_DRONE_TOKEN_FILE"],
        old_env: &[],
        flag: "--drone-token-file",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: path of a file holding `drone_token` (relative to the workspace; surrounding whitespace is trimmed). Give one of the two; on a command line prefer this to `--drone-token`.",
        help: "Sweep: a file holding the Drone API token (trimmed).",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "drone_repo",
        env: &["PLUGIN_DRONE_REPO", "DRONE_REPO"],
        old_env: &[],
        flag: "--drone-repo",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: `owner/name` of the repository whose `canonical` pipeline runs tag mode; in tag mode, finds the recipe when `recipe` is unset.",
        help: "Sweep: `owner/name` of the Drone repository.",
        used_by: MODES,
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "drone_branch",
        env: &["PLUGIN_DRONE_BRANCH"],
        old_env: &[],
        flag: "--drone-branch",
        kind: SettingType::String,
        default: "main",
        secret: false,
        required: Required::No,
        meaning: "Sweep: the branch of `drone_repo` the started builds run on.",
        help: "Sweep: the branch of the Drone repository.",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "listener_url",
        env: &["PLUGIN_LISTENER_URL"],
        old_env: &[],
        flag: "--listener-url",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: base URL of canon-listener's HTTP API (`http://127.0.0.1:8088`), to ask whether the listener already had a job for a tag the sweep starts, so missed webhooks are counted. `http` or `https`, without a user or password.",
        help: "Sweep: base URL of canon-listener's HTTP API (e.g. `http://127.0.0.1:8088`).",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "listener_token",
        env: &["PLUGIN_LISTENER_TOKEN"],
        old_env: &[],
        flag: "--listener-token",
        kind: SettingType::String,
        default: "",
        secret: true,
        required: Required::No,
        meaning: "Sweep: the listener's `CANON_ADMIN_TOKEN`, sent as a bearer token to `listener_url` when the listener protects its API.",
        help: "Sweep: the listener's admin token (prefer `--listener-token-file`: flags show in `ps`).",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "listener_token_file",
        env: &["PLUGIN_LISTENER_TOKEN_FILE"],
        old_env: &[],
        flag: "--listener-token-file",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: path of a file holding `listener_token` (relative to the workspace; surrounding whitespace is trimmed). Give one of the two; on a command line prefer this to `--listener-token`.",
        help: "Sweep: a file holding the listener's admin token (trimmed).",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "cleanup_after",
        env: &["PLUGIN_CLEANUP_AFTER"],
        old_env: &[],
        flag: "--cleanup-after",
        kind: SettingType::Duration,
        default: "3h",
        secret: false,
        required: Required::No,
        meaning: "Sweep: remove what cold runs older than this left behind (killed runs); never a `warm-*` canonical.",
        help: "Sweep: the age after which a cold run's leftovers are removed.",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "min_free",
        env: &["PLUGIN_MIN_FREE"],
        old_env: &[],
        flag: "--min-free",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: skip a recipe when the state dir or Docker's data root has less free space than this (`10G`, `500M`); unset: no check.",
        help: "Sweep: the minimum free space (e.g. `10G`).",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "idle_exit_code",
        env: &["PLUGIN_IDLE_EXIT_CODE"],
        old_env: &[],
        flag: "--idle-exit-code",
        kind: SettingType::Number,
        default: "0",
        secret: false,
        required: Required::No,
        meaning: "Sweep: the exit code when nothing needed doing; `78` makes Drone skip the remaining steps.",
        help: "Sweep: the exit code when nothing needed doing.",
        used_by: &[Use::Sweep],
        refused_elsewhere: false,
    },
    SettingDoc {
        name: "by",
        env: &["PLUGIN_BY", "USER"],
        old_env: &[],
        flag: "--by",
        kind: SettingType::String,
        default: "unknown",
        secret: false,
        required: Required::No,
        meaning: "Who pins or unpins a canonical, recorded with it and in the history.",
        help: "Who pins or unpins (default: `$USER`).",
        used_by: &[Use::CanonicalBy],
        refused_elsewhere: false,
    },
];

/// Returns the documentation of the setting called `name`.
pub fn setting_doc(name: &str) -> Option<&'static SettingDoc> {
    KNOWN_SETTINGS.iter().find(|s| s.name == name)
}

/// Returns the plugin setting (a setting of a mode) called `name`: what `.drone.yml` may pass.
pub fn plugin_setting(name: &str) -> Option<&'static SettingDoc> {
    setting_doc(name).filter(|s| s.is_plugin_setting())
}

/// Returns the plugin settings (the settings of the two modes), in the settings reference's order.
pub fn plugin_settings() -> impl Iterator<Item = &'static SettingDoc> {
    KNOWN_SETTINGS.iter().filter(|s| s.is_plugin_setting())
}

/// Returns the settings `place` reads, in table order.
pub fn settings_of(place: Use) -> impl Iterator<Item = &'static SettingDoc> {
    KNOWN_SETTINGS.iter().filter(move |s| s.used_in(place))
}

/// Renders the plugin settings of [`KNOWN_SETTINGS`] as the Markdown table of the settings
/// reference (`docs/reference/plugin-settings.md`), with each setting's example value.
pub fn settings_table_markdown() -> String {
    let mut out = String::from(
        "| setting | env var | flag | type | default | example | secret | required | meaning |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in plugin_settings() {
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
            "| `{}` | {} | `{}` | {} | {} | `{}` | {} | {} | {} |\n",
            s.name,
            env,
            s.flag,
            s.kind.as_str(),
            default,
            super::examples::setting_example(s.name),
            if s.secret { "yes" } else { "no" },
            required,
            s.meaning.replace('|', "\\|"),
        ));
    }
    out
}

/// Renders the plugin settings of [`KNOWN_SETTINGS`] as the `properties:` section of the plugin card
/// (`plugin/card.yaml`, the drone-plugin-index `content.yaml` form), which ends the card.
/// Durations are strings to the index, so their description says what one looks like.
pub fn plugin_card_properties_yaml() -> String {
    let mut out = String::from("properties:\n");
    for s in plugin_settings() {
        let (kind, hint) = match s.kind {
            SettingType::Duration => ("string", " (a duration like 30m or 90s)"),
            other => (other.as_str(), ""),
        };
        let default = match s.kind {
            SettingType::Boolean | SettingType::Number | SettingType::Array
                if !s.default.is_empty() =>
            {
                s.default.to_string()
            }
            _ => format!("'{}'", s.default.replace('\'', "''")),
        };
        let description = format!("{}{hint}", s.meaning.replace('`', ""))
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        out.push_str(&format!(
            "  {}:\n    type: {kind}\n    defaultValue: {default}\n    description: \"{description}\"\n    secret: {}\n    required: {}\n",
            s.name,
            s.secret,
            s.required == Required::Always,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn the_plugin_card_properties_are_rendered_from_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/card.yaml");
        let card = std::fs::read_to_string(path).unwrap();
        let rendered = plugin_card_properties_yaml();
        assert!(
            card.ends_with(&rendered),
            "plugin/card.yaml must end with the properties exactly as rendered:\n{rendered}"
        );
    }

    #[test]
    fn every_typed_default_parses() {
        use canon_shared::settings::{parse_bool, parse_duration, parse_exit_code};
        for s in KNOWN_SETTINGS.iter().filter(|s| !s.default.is_empty()) {
            let parsed = match s.kind {
                SettingType::Boolean => parse_bool(s.name, s.default).map(drop),
                SettingType::Duration => parse_duration(s.name, s.default).map(drop),
                SettingType::Number => parse_exit_code(s.name, s.default).map(drop),
                SettingType::String | SettingType::Array => Ok(()),
            };
            assert!(parsed.is_ok(), "{}: {parsed:?}", s.name);
        }
    }

    #[test]
    fn secret_settings_are_known() {
        let secrets: Vec<_> = Settings::secret_env_vars().collect();
        assert_eq!(
            secrets,
            [
                "PLUGIN_UPSTREAM_TOKEN",
                "CANON_UPSTREAM_TOKEN",
                "PLUGIN_MIRROR_TOKEN",
                "CANON_MIRROR_TOKEN",
                "PLUGIN_SSH_KEY",
                "PLUGIN_DRONE_TOKEN",
                "PLUGIN_LISTENER_TOKEN",
            ]
        );
        for s in KNOWN_SETTINGS.iter().filter(|s| s.secret) {
            let file = format!("{}_file", s.name);
            assert!(setting_doc(&file).is_some(), "{} has no {file}", s.name);
        }
        for s in KNOWN_SETTINGS {
            assert_eq!(s.env[0], format!("PLUGIN_{}", s.name.to_uppercase()));
            assert_eq!(s.flag, format!("--{}", s.name.replace('_', "-")));
        }
    }

    #[test]
    fn every_secret_setting_and_its_file_are_withheld_from_children_and_proc() {
        use canon_shared::process_env::{child_variable, is_credential, CREDENTIAL_VARIABLES};
        for s in KNOWN_SETTINGS.iter().filter(|s| s.secret) {
            let file = setting_doc(&format!("{}_file", s.name)).unwrap();
            for name in s.env.iter().chain(s.old_env).chain(file.env) {
                assert!(CREDENTIAL_VARIABLES.contains(name), "{name}");
                assert!(is_credential(name) && !child_variable(name), "{name}");
            }
        }
    }

    #[test]
    fn every_entry_is_read_somewhere_once_and_old_names_are_not_plugin_names() {
        for s in KNOWN_SETTINGS {
            assert!(!s.used_by.is_empty(), "{} is read nowhere", s.name);
            let twice = KNOWN_SETTINGS.iter().filter(|o| o.name == s.name).count();
            assert_eq!(twice, 1, "{} twice", s.name);
            for old in s.old_env {
                assert!(!old.starts_with("PLUGIN_"), "{}: {old}", s.name);
                assert!(!s.env.contains(old), "{}: {old} is both", s.name);
            }
            if s.refused_elsewhere {
                assert!(
                    !(s.used_in(Use::Tag) && s.used_in(Use::Sweep)),
                    "{}: refused by a mode that reads it",
                    s.name
                );
            }
        }
        // Only the settings of the two modes are plugin settings (README rows, card properties).
        assert!(plugin_setting("by").is_none());
        assert!(setting_doc("by").is_some());
        assert_eq!(plugin_settings().count() + 1, KNOWN_SETTINGS.len());
    }
}
