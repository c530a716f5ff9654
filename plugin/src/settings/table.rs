//! The settings table: every setting canon-plugin reads, with its environment variables, flag,
//! type, default and meaning, in one list ([`KNOWN_SETTINGS`]).
//!
//! Separate from parsing because it is documentation that code checks: the README table is
//! rendered from it ([`settings_table_markdown`]) and a test holds README and `plugin/card.yaml`
//! equal to it; [`super::Environment`] uses it to warn about unknown `PLUGIN_*` names, and
//! [`super::Settings::secret_env_vars`] to keep secrets out of child processes.

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
        name: "warm",
        env: &["PLUGIN_WARM"],
        flag: "--warm",
        kind: SettingType::Boolean,
        default: "true",
        secret: false,
        required: Required::No,
        meaning: "A `ref` run (a pull request or branch) copies the canonical's warm volumes and upgrades the head over them, when this host holds them; `false` (the flag `--cold`) installs fresh. Tags always run cold.",
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
        name: "state_repo",
        env: &["PLUGIN_STATE_REPO"],
        flag: "--state-repo",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "A git repository (URL or path) that holds the canonical records and their history for every runner host, pushed with the mirror credentials (`mirror_token`, `ssh_key`). Unset: the state dir holds them.",
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
        name: "upstream_token_file",
        env: &["PLUGIN_UPSTREAM_TOKEN_FILE"],
        flag: "--upstream-token-file",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Path of a file holding `upstream_token` (relative to the workspace; surrounding whitespace is trimmed). Give one of the two; on a command line prefer this to `--upstream-token`.",
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
        name: "mirror_token_file",
        env: &["PLUGIN_MIRROR_TOKEN_FILE"],
        flag: "--mirror-token-file",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Path of a file holding `mirror_token` (relative to the workspace; surrounding whitespace is trimmed). Give one of the two; on a command line prefer this to `--mirror-token`.",
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
        name: "ssh_key_file",
        env: &["PLUGIN_SSH_KEY_FILE"],
        flag: "--ssh-key-file",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Path of a file holding `ssh_key`, read as is (relative to the workspace). Give one of the two; on a command line prefer this to `--ssh-key`.",
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
        name: "recipe_deadline",
        env: &["PLUGIN_RECIPE_DEADLINE"],
        flag: "--recipe-deadline",
        kind: SettingType::Duration,
        default: "3h",
        secret: false,
        required: Required::No,
        meaning: "Sweep: how long one recipe may take in all (sync, decision, and its build start or inline run). Past it the recipe is reported failed and the sweep goes on with the others; a run's own stage timeouts still apply.",
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
        name: "drone_token_file",
        env: &["PLUGIN_DRONE_TOKEN_FILE"],
        flag: "--drone-token-file",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: path of a file holding `drone_token` (relative to the workspace; surrounding whitespace is trimmed). Give one of the two; on a command line prefer this to `--drone-token`.",
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
        name: "listener_url",
        env: &["PLUGIN_LISTENER_URL"],
        flag: "--listener-url",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: base URL of canon-listener's HTTP API (`http://127.0.0.1:8088`), to ask whether the listener already had a job for a tag the sweep starts, so missed webhooks are counted. `http` or `https`, without a user or password.",
    },
    SettingDoc {
        name: "listener_token",
        env: &["PLUGIN_LISTENER_TOKEN"],
        flag: "--listener-token",
        kind: SettingType::String,
        default: "",
        secret: true,
        required: Required::No,
        meaning: "Sweep: the listener's `CANON_ADMIN_TOKEN`, sent as a bearer token to `listener_url` when the listener protects its API.",
    },
    SettingDoc {
        name: "listener_token_file",
        env: &["PLUGIN_LISTENER_TOKEN_FILE"],
        flag: "--listener-token-file",
        kind: SettingType::String,
        default: "",
        secret: false,
        required: Required::No,
        meaning: "Sweep: path of a file holding `listener_token` (relative to the workspace; surrounding whitespace is trimmed). Give one of the two; on a command line prefer this to `--listener-token`.",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn secret_settings_are_known() {
        let secrets: Vec<_> = Settings::secret_env_vars().collect();
        assert_eq!(
            secrets,
            [
                "PLUGIN_UPSTREAM_TOKEN",
                "PLUGIN_MIRROR_TOKEN",
                "PLUGIN_SSH_KEY",
                "PLUGIN_DRONE_TOKEN",
                "PLUGIN_LISTENER_TOKEN",
            ]
        );
        for s in KNOWN_SETTINGS {
            assert_eq!(s.env[0], format!("PLUGIN_{}", s.name.to_uppercase()));
            assert_eq!(s.flag, format!("--{}", s.name.replace('_', "-")));
        }
    }
}
