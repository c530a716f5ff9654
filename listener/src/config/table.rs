//! The listener's settings table: every `CANON_*` variable canon-listener reads, with its kind,
//! default, whether it is required and its meaning, in one list ([`VARIABLES`]), and the reading
//! of `(name, value)` pairs into typed values by that table ([`Values`]).
//!
//! Separate from [`super::Settings`] because it is documentation that code checks: the listener reference's
//! variables table is rendered from it ([`settings_table_markdown`]) and a test holds that page
//! equal to it; [`ENV_VARS`] (which the NixOS module is checked against) is its names; and the
//! defaults validation falls back to are its `default` texts, so each is written once. The value
//! rules (numbers, durations, URLs, secrets) are canon-shared's ([`canon_shared::settings`]); the
//! sentences are the listener's, naming the variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use canon_shared::secret::{without_userinfo, Secret};
use canon_shared::settings::{
    http_url_without_credentials, positive_duration, secret_list, whole_number_in, HttpUrlProblem,
    Problems, RawValues,
};

/// What a variable holds, and so how its value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text, trimmed.
    Text,
    /// A file or directory path, trimmed.
    Path,
    /// A secret, kept as given.
    Secret,
    /// Comma-separated secrets.
    SecretList,
    /// `address:port`.
    Address,
    /// An `http(s)` base URL without user or password (its final `/` dropped).
    HttpUrl,
    /// A git repository location that must not carry credentials.
    GitLocation,
    /// A whole number from `min` to `max`.
    Number {
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A duration longer than zero, like `10s`, `15m` or `30days`.
    Duration,
    /// A duration, or `0` for off.
    DurationOrOff,
}

/// Whether a variable must be set, and the hint that follows "`VAR` is not set:" when it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Optional.
    No,
    /// Required for every purpose.
    Always(&'static str),
    /// Required to serve (starting builds needs Drone; registering hooks does not).
    ToServe(&'static str),
}

/// One `CANON_*` variable: one row of the listener reference.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    /// The environment variable.
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// The default, as text (empty: none). Validation falls back to it; it must parse (a unit
    /// test holds every one to that).
    pub default: &'static str,
    /// Whether it must be set.
    pub need: Need,
    /// What it does, as the listener reference says it.
    pub meaning: &'static str,
}

/// The plugin image the served pipelines run unless `CANON_PIPELINE_IMAGE` says otherwise: this
/// release's tag. Not the table's default text, so the reference's table does not change with each
/// release.
pub const PIPELINE_IMAGE: &str = concat!("canon-plugin:", env!("CARGO_PKG_VERSION"));

/// Every variable canon-listener reads, in the listener reference's order.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "CANON_BIND",
        kind: Kind::Address,
        default: "127.0.0.1:8088",
        need: Need::No,
        meaning: "Address and port to listen on.",
    },
    Variable {
        name: "CANON_STATE_DIR",
        kind: Kind::Path,
        default: "./canon-state",
        need: Need::No,
        meaning: "State directory: canonicals, mirror caches, the journal.",
    },
    Variable {
        name: "CANON_ENROLLMENT",
        kind: Kind::Path,
        default: "",
        need: Need::Always("give the enrollment file"),
        meaning: "The enrollment file. A payload's repo maps to a recipe by `full_name`, clone URL or web URL of its `upstream`.",
    },
    Variable {
        name: "CANON_WEBHOOK_SECRETS",
        kind: Kind::SecretList,
        default: "",
        need: Need::Always("refusing to accept unsigned webhooks (give one secret, or two comma-separated while rotating)"),
        meaning: "Comma-separated webhook secrets (16+ characters each); two at once while rotating. The listener refuses to start without one.",
    },
    Variable {
        name: "CANON_FORGE_URL",
        kind: Kind::HttpUrl,
        default: "",
        need: Need::No,
        meaning: "Upstream forge base URL (tag resolution, `register-hooks`).",
    },
    Variable {
        name: "CANON_FORGE_TOKEN",
        kind: Kind::Secret,
        default: "",
        need: Need::No,
        meaning: "Upstream forge token; also used to fetch over HTTPS.",
    },
    Variable {
        name: "CANON_MIRROR_URL",
        kind: Kind::HttpUrl,
        default: "",
        need: Need::No,
        meaning: "Mirror forge base URL.",
    },
    Variable {
        name: "CANON_MIRROR_TOKEN",
        kind: Kind::Secret,
        default: "",
        need: Need::No,
        meaning: "Token used to push to the mirror over HTTPS.",
    },
    Variable {
        name: "CANON_SSH_KEY",
        kind: Kind::Path,
        default: "",
        need: Need::No,
        meaning: "Private key file for SSH remotes (else the SSH agent).",
    },
    Variable {
        name: "CANON_STATE_REPO",
        kind: Kind::GitLocation,
        default: "",
        need: Need::No,
        meaning: "A git state repository holding the canonical records (see \"State directory\"), read with `CANON_MIRROR_TOKEN` or `CANON_SSH_KEY`; unset: the state dir holds them.",
    },
    Variable {
        name: "CANON_KNOWN_HOSTS",
        kind: Kind::Path,
        default: "",
        need: Need::No,
        meaning: "OpenSSH `known_hosts` file that alone decides which SSH host keys are trusted (else `~/.ssh/known_hosts` of the service user).",
    },
    Variable {
        name: "CANON_DRONE_SERVER",
        kind: Kind::HttpUrl,
        default: "",
        need: Need::ToServe("give the Drone server URL"),
        meaning: "Drone server URL. The listener starts when Drone is down; jobs wait.",
    },
    Variable {
        name: "CANON_DRONE_TOKEN",
        kind: Kind::Secret,
        default: "",
        need: Need::ToServe("give a Drone API token"),
        meaning: "Drone API token with write access to the repo.",
    },
    Variable {
        name: "CANON_DRONE_REPO",
        kind: Kind::Text,
        default: "",
        need: Need::ToServe("give the Drone repository as owner/name"),
        meaning: "Drone repository `owner/name` whose pipeline (accepting `event: custom`) runs the cold CI.",
    },
    Variable {
        name: "CANON_DRONE_BRANCH",
        kind: Kind::Text,
        default: "main",
        need: Need::No,
        meaning: "Branch the builds are started on.",
    },
    Variable {
        name: "CANON_WORKERS",
        kind: Kind::Number { min: 1, max: 1_000 },
        default: "2",
        need: Need::No,
        meaning: "Jobs running at once (always one per recipe).",
    },
    Variable {
        name: "CANON_MAX_ATTEMPTS",
        kind: Kind::Number { min: 1, max: 1_000 },
        default: "8",
        need: Need::No,
        meaning: "Attempts before a job stays failed.",
    },
    Variable {
        name: "CANON_RETRY_BASE",
        kind: Kind::Duration,
        default: "10s",
        need: Need::No,
        meaning: "First retry delay; doubled each time, with jitter.",
    },
    Variable {
        name: "CANON_RETRY_MAX",
        kind: Kind::Duration,
        default: "15m",
        need: Need::No,
        meaning: "Longest retry delay.",
    },
    Variable {
        name: "CANON_ATTEMPT_DEADLINE",
        kind: Kind::Duration,
        default: "15m",
        need: Need::No,
        meaning: "How long one job attempt (resolve, sync, trigger) may take in all; past it the attempt is retried and the recipe is free again. Git calls also stop after 30 s without a connection or 60 s without data.",
    },
    Variable {
        name: "CANON_RETENTION",
        kind: Kind::Duration,
        default: "30days",
        need: Need::No,
        meaning: "How long journaled deliveries are kept (a duration such as `30days`, `12h`); older ones are pruned hourly unless their job is unfinished.",
    },
    Variable {
        name: "CANON_PUBLIC_URL",
        kind: Kind::HttpUrl,
        default: "",
        need: Need::No,
        meaning: "This listener's public URL, for `register-hooks`.",
    },
    Variable {
        name: "CANON_ADMIN_TOKEN",
        kind: Kind::Secret,
        default: "",
        need: Need::No,
        meaning: "Secret (at least 16 characters): `/`, `/api/*` and `/metrics` then need `Authorization: Bearer <token>` (a missing or wrong one is a bare 401); `/healthz`, `/readyz`, `/badge/*` and `/hooks/*` stay open. Unset: every read is open.",
    },
    Variable {
        name: "CANON_LOG",
        kind: Kind::Text,
        default: "info",
        need: Need::No,
        meaning: "Log filter; logs are JSON lines, one per delivery, never a secret, signature or body.",
    },
    Variable {
        name: "CANON_MAX_CONNECTIONS",
        kind: Kind::Number { min: 1, max: 65_536 },
        default: "256",
        need: Need::No,
        meaning: "Connections served at once (1 to 65536); past it a new connection is closed at once. Lowered at start, with a warning, to stay 64 below the process's file limit (`RLIMIT_NOFILE`).",
    },
    Variable {
        name: "CANON_HEADER_TIMEOUT",
        kind: Kind::Duration,
        default: "10s",
        need: Need::No,
        meaning: "How long a connection may take to send a complete request head, counted from when it opens or from its previous answer (so also the keep-alive idle timeout); at most `60s`. Past it the connection is closed.",
    },
    Variable {
        name: "CANON_REQUEST_DEADLINE",
        kind: Kind::Duration,
        default: "30s",
        need: Need::No,
        meaning: "How long one request may take once its head is read (body, handling, all); past it the answer is 408 and the connection is closed.",
    },
    Variable {
        name: "CANON_SHUTDOWN_DEADLINE",
        kind: Kind::Duration,
        default: "10s",
        need: Need::No,
        meaning: "How long a shutdown waits for requests in flight before it drops their connections.",
    },
    Variable {
        name: "CANON_DRONE_CONFIG_SECRET",
        kind: Kind::Secret,
        default: "",
        need: Need::No,
        meaning: "Secret (at least 16 characters) shared with the Drone server's `DRONE_YAML_SECRET`: the listener then answers Drone's configuration extension at `POST /drone/config` (`DRONE_YAML_ENDPOINT`) with canon's pipelines, checking Drone's HTTP signature. Unset: that path is a 404.",
    },
    Variable {
        name: "CANON_PIPELINE_IMAGE",
        kind: Kind::Text,
        default: "",
        need: Need::No,
        meaning: "The plugin image the pipelines served at `/drone/config` run; unset: `canon-plugin:` and this release's version.",
    },
    Variable {
        name: "CANON_PIPELINE_STATE_DIR",
        kind: Kind::Path,
        default: "/var/lib/canon",
        need: Need::No,
        meaning: "The runner host's state directory the served pipelines mount (at the same path).",
    },
    Variable {
        name: "CANON_PIPELINE_ENROLLMENT",
        kind: Kind::Path,
        default: "/etc/canon/enrollment.yml",
        need: Need::No,
        meaning: "The runner host's enrollment file the served pipelines read; its folder is mounted at the same path.",
    },
    Variable {
        name: "CANON_PIPELINE_SECRET_PREFIX",
        kind: Kind::Text,
        default: "",
        need: Need::No,
        meaning: "Prefix of the Drone secret names the served pipelines read (`upstream_token`, `mirror_token`, `ssh_key`, `drone_token`, `listener_token`); unset: those names.",
    },
    Variable {
        name: "CANON_POLL_INTERVAL",
        kind: Kind::DurationOrOff,
        default: "10m",
        need: Need::No,
        meaning: "How often the upstream of each enrolled recipe without a recent webhook is asked for its tags over git (`0`: never). A new release tag found so is journaled as a delivery of kind `poll`.",
    },
];

/// The names of every variable the listener reads, in [`VARIABLES`] order.
pub const ENV_VARS: [&str; VARIABLES.len()] = {
    let mut names = [""; VARIABLES.len()];
    let mut i = 0;
    while i < VARIABLES.len() {
        names[i] = VARIABLES[i].name;
        i += 1;
    }
    names
};

/// Returns the table entry of the variable `name`.
pub fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// Returns the `CANON_*` names among `names` that canon-listener does not read (probably typos),
/// sorted, each once.
pub fn unknown_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with("CANON_") && variable(n).is_none())
        .map(str::to_string)
        .collect();
    unknown.sort();
    unknown.dedup();
    unknown
}

/// Returns the variables as `--help` lists them: one line each with its default, or whether it
/// is required.
pub fn variables_help() -> String {
    let width = VARIABLES.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::from("Variables (every setting is one; the docs explain each):\n");
    for v in VARIABLES {
        let note = match (v.default, v.need) {
            ("", Need::No) => String::new(),
            ("", Need::Always(_)) => "[required]".to_string(),
            ("", Need::ToServe(_)) => "[required to serve]".to_string(),
            (default, _) => format!("[default: {default}]"),
        };
        out.push_str(&format!("  {:width$}  {note}\n", v.name));
    }
    out
}

/// Renders [`VARIABLES`] as the Markdown table of `docs/reference/listener.md`.
pub fn settings_table_markdown() -> String {
    let mut out = String::from("| Variable | Default | Meaning |\n|---|---|---|\n");
    for v in VARIABLES {
        let default = match (v.default, v.need) {
            ("", Need::No) => "unset".to_string(),
            ("", _) => "(required)".to_string(),
            (default, _) => format!("`{default}`"),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            v.name,
            default,
            v.meaning.replace('|', "\\|")
        ));
    }
    out
}

/// One variable's value, read by its [`Kind`].
#[derive(Debug, Clone)]
enum Value {
    /// [`Kind::Text`], [`Kind::Path`], [`Kind::HttpUrl`], [`Kind::GitLocation`].
    Text(String),
    /// [`Kind::Secret`].
    Secret(Secret),
    /// [`Kind::SecretList`].
    Secrets(Vec<Secret>),
    /// [`Kind::Address`].
    Address(SocketAddr),
    /// [`Kind::Number`].
    Number(u64),
    /// [`Kind::Duration`].
    Duration(Duration),
}

/// Every variable's value: what was given when it is good, else the table's default. Reading
/// records a problem for each bad value and each required variable that is not set.
#[derive(Debug, Default)]
pub struct Values(BTreeMap<&'static str, Value>);

impl Values {
    /// Reads `pairs` (the process environment in `main`, a list in tests) by the table. Problems
    /// of variables needed only to serve go to `serve_problems`, every other to `problems`.
    pub fn read<I>(pairs: I, problems: &mut Problems, serve_problems: &mut Problems) -> Values
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let raw = RawValues::from_pairs(pairs, |name| variable(name).map(|v| v.name));
        let mut values = Values::default();
        for v in VARIABLES {
            let given = raw
                .get(v.name)
                .and_then(|text| read_value(v, text, problems));
            let value = given.or_else(|| {
                // The defaults parse (a unit test checks each): this records nothing.
                let default = (!v.default.is_empty()).then_some(v.default)?;
                read_value(v, default, &mut Problems::default())
            });
            let missing = match &value {
                None => raw.get(v.name).is_none(),
                Some(Value::Secrets(list)) => list.is_empty(),
                Some(_) => false,
            };
            if missing {
                match v.need {
                    Need::No => {}
                    Need::Always(hint) => problems.push(format!("{} is not set: {hint}", v.name)),
                    Need::ToServe(hint) => {
                        serve_problems.push(format!("{} is not set: {hint}", v.name))
                    }
                }
            }
            if let Some(value) = value {
                values.0.insert(v.name, value);
            }
        }
        values
    }

    /// Returns the value of a text, path or URL variable.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.0.get(name) {
            Some(Value::Text(t)) => Some(t.clone()),
            _ => None,
        }
    }

    /// Returns the value of a path variable.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.text(name).map(PathBuf::from)
    }

    /// Returns the value of a secret variable.
    pub fn secret(&self, name: &str) -> Option<Secret> {
        match self.0.get(name) {
            Some(Value::Secret(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// Returns the secrets of a list variable (empty when unset).
    pub fn secrets(&self, name: &str) -> Vec<Secret> {
        match self.0.get(name) {
            Some(Value::Secrets(s)) => s.clone(),
            _ => Vec::new(),
        }
    }

    /// Returns the value of an address variable.
    pub fn address(&self, name: &str) -> Option<SocketAddr> {
        match self.0.get(name) {
            Some(Value::Address(a)) => Some(*a),
            _ => None,
        }
    }

    /// Returns the value of a number variable (0 when it has none, which its default rules out).
    pub fn number(&self, name: &str) -> u64 {
        match self.0.get(name) {
            Some(Value::Number(n)) => *n,
            _ => 0,
        }
    }

    /// Returns the value of a duration variable (zero when it has none, which its default rules
    /// out).
    pub fn duration(&self, name: &str) -> Duration {
        match self.0.get(name) {
            Some(Value::Duration(d)) => *d,
            _ => Duration::ZERO,
        }
    }
}

/// Reads `text` as the value of `v`, or records why it is not one (never showing user info).
fn read_value(v: &Variable, text: &str, problems: &mut Problems) -> Option<Value> {
    let name = v.name;
    let trimmed = text.trim();
    match v.kind {
        Kind::Text | Kind::Path => Some(Value::Text(trimmed.to_string())),
        Kind::Secret => Some(Value::Secret(Secret::new(text))),
        Kind::SecretList => Some(Value::Secrets(secret_list(text))),
        Kind::Address => match trimmed.parse::<SocketAddr>() {
            Ok(a) => Some(Value::Address(a)),
            Err(e) => {
                problems.push(format!("{name} {trimmed:?}: not an address:port ({e})"));
                None
            }
        },
        Kind::HttpUrl => match http_url_without_credentials(trimmed) {
            Ok(url) => Some(Value::Text(url)),
            Err(HttpUrlProblem::NotHttpOrCarriesCredentials) => {
                problems.push(format!(
                    "{name}: must be an http(s) URL without credentials"
                ));
                None
            }
            Err(HttpUrlProblem::NotAUrl(e)) => {
                problems.push(format!(
                    "{name} {:?}: not a URL ({e})",
                    without_userinfo(trimmed)
                ));
                None
            }
        },
        Kind::GitLocation => {
            if canon_shared::secret::git_location_carries_credentials(trimmed) {
                problems.push(format!(
                    "{name} {:?}: must not carry credentials; set CANON_MIRROR_TOKEN or CANON_SSH_KEY",
                    canon_shared::secret::shown_location(trimmed)
                ));
                None
            } else {
                Some(Value::Text(trimmed.to_string()))
            }
        }
        Kind::Number { min, max } => match whole_number_in(trimmed, min..=max) {
            Some(n) => Some(Value::Number(n)),
            None => {
                problems.push(format!(
                    "{name} {trimmed:?}: must be a whole number from {min} to {max}"
                ));
                None
            }
        },
        Kind::DurationOrOff if trimmed == "0" => Some(Value::Duration(Duration::ZERO)),
        Kind::Duration | Kind::DurationOrOff => match positive_duration(trimmed) {
            Some(d) => Some(Value::Duration(d)),
            None => {
                problems.push(format!(
                    "{name} {trimmed:?}: must be a duration such as 10s, 500ms or 15m{}",
                    if v.kind == Kind::DurationOrOff {
                        ", or 0 for off"
                    } else {
                        ""
                    }
                ));
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_credential_variable_is_withheld_from_children_and_proc() {
        use canon_shared::process_env::{child_variable, is_credential, CREDENTIAL_VARIABLES};
        for v in VARIABLES {
            // A secret, or the path of a private key file.
            if matches!(v.kind, Kind::Secret | Kind::SecretList) || v.name == "CANON_SSH_KEY" {
                assert!(CREDENTIAL_VARIABLES.contains(&v.name), "{}", v.name);
                assert!(
                    is_credential(v.name) && !child_variable(v.name),
                    "{}",
                    v.name
                );
            }
        }
    }

    #[test]
    fn unknown_canon_variables_are_listed_once_and_others_are_not() {
        let names = [
            "CANON_ENROLMENT",
            "CANON_BIND",
            "PATH",
            "CANON_ENROLMENT",
            "PLUGIN_CONFIG",
            "CANON_WORKER",
        ];
        assert_eq!(
            unknown_variables(names),
            ["CANON_ENROLMENT", "CANON_WORKER"]
        );
    }

    #[test]
    fn the_help_lists_every_variable_with_its_default_or_need() {
        let help = variables_help();
        for v in VARIABLES {
            assert!(help.contains(v.name), "{} missing:\n{help}", v.name);
        }
        assert!(help.contains("[default: 127.0.0.1:8088]"), "{help}");
        assert!(help.contains("[required]"), "{help}");
    }

    #[test]
    fn every_default_parses() {
        for v in VARIABLES.iter().filter(|v| !v.default.is_empty()) {
            let mut problems = Problems::default();
            assert!(
                read_value(v, v.default, &mut problems).is_some(),
                "{}",
                v.name
            );
            assert!(problems.into_result().is_ok(), "{}", v.name);
        }
    }

    #[test]
    fn the_listener_reference_variables_table_is_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reference/listener.md");
        let page = std::fs::read_to_string(path).unwrap();
        let table = settings_table_markdown();
        assert!(
            page.contains(&table),
            "docs/reference/listener.md must contain the listener's variables table exactly as rendered:\n{table}"
        );
    }

    #[test]
    fn a_required_variable_has_no_default() {
        for v in VARIABLES {
            assert!(v.name.starts_with("CANON_"), "{}", v.name);
            if v.need != Need::No {
                assert!(v.default.is_empty(), "{}", v.name);
            }
        }
    }
}
