//! Settings: read once from `CANON_*` environment variables, validated with every problem
//! reported at once.
//!
//! Two stages: the table ([`VARIABLES`]) reads each variable by its kind, falling back to its
//! default; then [`Settings::from_pairs_for`] checks what spans variables and builds the typed
//! settings, or a [`SettingsError`] (canon-shared's, the plugin's too) listing every problem.
//! Tests pass pairs to [`Settings::from_pairs`]; only `main` reads the process environment.
//!
//! # Layout
//! - `table`: [`VARIABLES`], one entry per variable (kind, default, need, meaning), the listener
//!   table rendered from it, and the reading of pairs by it.
//! - this file: the validated types and the checks across variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use canon_shared::secret::Secret;
use canon_shared::settings::{Heading, Problems};

mod table;

pub use canon_shared::settings::SettingsError;
use table::Values;
pub use table::{
    settings_table_markdown, unknown_variables, variable, variables_help, Kind, Need, Variable,
    ENV_VARS, PIPELINE_IMAGE, VARIABLES,
};

/// Where and how builds are started in Drone.
#[derive(Debug, Clone)]
pub struct DroneSettings {
    /// `http(s)://host[:port]` of the Drone server.
    pub server: String,
    /// The API token (a user with write access to [`DroneSettings::repo`]).
    pub token: Secret,
    /// The Drone repository (`owner/name`) whose pipeline runs canon's cold CI.
    pub repo: String,
    /// The branch builds are started on.
    pub branch: String,
}

/// How failed jobs are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a job stays failed (at least 1).
    pub max_attempts: u32,
    /// Delay after the first failure; doubled after each further one.
    pub base: Duration,
    /// Upper bound of a delay.
    pub max: Duration,
    /// How long one attempt may take in all; past it the attempt is a retryable failure and its
    /// recipe is free again, whatever it was waiting on.
    pub attempt_deadline: Duration,
}

/// How the HTTP server bounds its connections, so that slow or half-open clients cannot hold
/// the process's file descriptors or its shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once (`CANON_MAX_CONNECTIONS`, default 256); past it a new
    /// connection is closed at once. Lowered at start to stay below the file limit.
    pub max_connections: usize,
    /// How long a connection may take to send a complete request head, counted from when it
    /// opens or from its previous response (`CANON_HEADER_TIMEOUT`, default 10 s, at most 60 s):
    /// also the keep-alive idle timeout.
    pub header_timeout: Duration,
    /// How long one request may take once its head is read: body, handler and all
    /// (`CANON_REQUEST_DEADLINE`, default 30 s); past it the answer is 408 and the connection
    /// closes.
    pub request_deadline: Duration,
    /// How long a shutdown waits for requests in flight before it drops their connections
    /// (`CANON_SHUTDOWN_DEADLINE`, default 10 s).
    pub shutdown_deadline: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            request_deadline: Duration::from_secs(30),
            shutdown_deadline: Duration::from_secs(10),
        }
    }
}

/// What the pipelines served to Drone's configuration extension are rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSettings {
    /// The plugin image (`CANON_PIPELINE_IMAGE`, default this release's `canon-plugin` tag).
    pub image: String,
    /// The runner host's state directory, mounted at the same path.
    pub state_dir: PathBuf,
    /// The runner host's enrollment file; its folder is mounted at the same path.
    pub enrollment: PathBuf,
    /// Prefix of the Drone secret names the steps read (empty: the plain names).
    pub secret_prefix: String,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            image: table::PIPELINE_IMAGE.to_string(),
            state_dir: PathBuf::from("/var/lib/canon"),
            enrollment: PathBuf::from("/etc/canon/enrollment.yml"),
            secret_prefix: String::new(),
        }
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the HTTP server binds (`CANON_BIND`, default `127.0.0.1:8088`).
    pub bind: SocketAddr,
    /// The state directory: canonical records, and the journal `listener.sqlite3`.
    pub state_dir: PathBuf,
    /// The git state repository holding the canonical records, when set (else the state dir).
    pub state_repo: Option<String>,
    /// The enrollment file.
    pub enrollment: PathBuf,
    /// Webhook secrets; a delivery signed with any of them is accepted (rotation).
    pub webhook_secrets: Vec<Secret>,
    /// Base URL of the upstream forge's API, for tag resolution and `register-hooks`.
    pub forge_url: Option<String>,
    /// Token for the upstream forge.
    pub forge_token: Option<Secret>,
    /// Base URL of the mirror forge.
    pub mirror_url: Option<String>,
    /// Token used to push to the mirror over HTTPS.
    pub mirror_token: Option<Secret>,
    /// SSH private key used for `ssh://` or scp-like remotes.
    pub ssh_key: Option<PathBuf>,
    /// An OpenSSH known_hosts file that alone decides which SSH host keys are trusted; unset:
    /// `~/.ssh/known_hosts` of the service user.
    pub known_hosts: Option<PathBuf>,
    /// Drone settings.
    pub drone: DroneSettings,
    /// Jobs run at once across recipes (one at a time per recipe).
    pub workers: usize,
    /// Retry policy for failed jobs.
    pub retry: RetryPolicy,
    /// How long journaled deliveries are kept (`CANON_RETENTION`, default 30 days); older ones
    /// are pruned unless their job is unfinished.
    pub retention: Duration,
    /// The public URL of this listener, used by `register-hooks` (`<url>/hooks/gitea`).
    pub public_url: Option<String>,
    /// The bearer token `/`, `/api/*` and `/metrics` require (`CANON_ADMIN_TOKEN`); unset: they
    /// are open. `/healthz`, `/readyz` and `/hooks/*` are always open.
    pub admin_token: Option<Secret>,
    /// The log filter (`CANON_LOG`, default `info`).
    pub log: String,
    /// Connection cap and timeouts of the HTTP server.
    pub http: HttpLimits,
    /// The secret Drone signs configuration requests with (`CANON_DRONE_CONFIG_SECRET`); unset:
    /// `/drone/config` is not served.
    pub drone_config_secret: Option<Secret>,
    /// What the served pipelines are rendered from.
    pub pipelines: PipelineSettings,
    /// How often upstreams are polled for tags (`CANON_POLL_INTERVAL`, default 10 minutes);
    /// zero: never.
    pub poll_interval: Duration,
}

/// What the settings are for: serving needs Drone; registering hooks does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `canon-listener` (serve webhooks, run jobs).
    Serve,
    /// `canon-listener register-hooks`.
    RegisterHooks,
}

impl Settings {
    /// Reads the settings for serving from `(name, value)` pairs such as `std::env::vars()`.
    pub fn from_pairs<I>(pairs: I) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        Self::from_pairs_for(pairs, Purpose::Serve)
    }

    /// Reads the settings `purpose` needs from `(name, value)` pairs.
    pub fn from_pairs_for<I>(pairs: I, purpose: Purpose) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut problems = Problems::new(Heading::Invalid);
        // Problems that only matter when serving (Drone is not needed to register hooks).
        let mut serve_problems = Problems::new(Heading::Invalid);
        let pairs: Vec<(String, String)> = pairs.into_iter().collect();
        // A blank value unsets other settings; a blank admin token would leave the admin API
        // open while the operator meant to close it, so it is refused like a short one.
        if pairs
            .iter()
            .any(|(k, v)| k == "CANON_ADMIN_TOKEN" && v.trim().is_empty())
        {
            problems.push(
                "CANON_ADMIN_TOKEN is set but blank: give a token of at least 16 characters, or unset it to leave the admin API open",
            );
        }
        let v = Values::read(pairs, &mut problems, &mut serve_problems);

        let webhook_secrets = v.secrets("CANON_WEBHOOK_SECRETS");
        if webhook_secrets.iter().any(|s| s.expose().len() < 16) {
            problems.push("CANON_WEBHOOK_SECRETS: every secret must be at least 16 characters");
        }
        let drone_repo = v.text("CANON_DRONE_REPO");
        if let Some(r) = &drone_repo {
            if r.split('/').count() != 2 || r.split('/').any(str::is_empty) {
                problems.push(format!("CANON_DRONE_REPO {r:?}: must be owner/name"));
            }
        }
        // A long header timeout is what lets half-open connections pile up (issue 14).
        if v.duration("CANON_HEADER_TIMEOUT") > Duration::from_secs(60) {
            problems.push("CANON_HEADER_TIMEOUT: must be at most 60s");
        }
        let retry = RetryPolicy {
            max_attempts: v.number("CANON_MAX_ATTEMPTS") as u32,
            base: v.duration("CANON_RETRY_BASE"),
            max: v.duration("CANON_RETRY_MAX"),
            attempt_deadline: v.duration("CANON_ATTEMPT_DEADLINE"),
        };
        if retry.max < retry.base {
            problems.push("CANON_RETRY_MAX must not be shorter than CANON_RETRY_BASE");
        }
        let forge_url = v.text("CANON_FORGE_URL");
        let forge_token = v.secret("CANON_FORGE_TOKEN");
        if forge_token.is_some() && forge_url.is_none() {
            problems.push("CANON_FORGE_TOKEN is set but CANON_FORGE_URL is not");
        }
        let admin_token = v.secret("CANON_ADMIN_TOKEN");
        if admin_token
            .as_ref()
            .is_some_and(|t| t.expose().trim().len() < 16)
        {
            problems.push("CANON_ADMIN_TOKEN: must be at least 16 characters");
        }
        let drone_config_secret = v.secret("CANON_DRONE_CONFIG_SECRET");
        if drone_config_secret
            .as_ref()
            .is_some_and(|t| t.expose().trim().len() < 16)
        {
            problems.push("CANON_DRONE_CONFIG_SECRET: must be at least 16 characters");
        }
        let pipelines = PipelineSettings {
            image: v
                .text("CANON_PIPELINE_IMAGE")
                .unwrap_or_else(|| PIPELINE_IMAGE.to_string()),
            state_dir: v.path("CANON_PIPELINE_STATE_DIR").unwrap_or_default(),
            enrollment: v.path("CANON_PIPELINE_ENROLLMENT").unwrap_or_default(),
            secret_prefix: v.text("CANON_PIPELINE_SECRET_PREFIX").unwrap_or_default(),
        };
        for (name, path) in [
            ("CANON_PIPELINE_STATE_DIR", &pipelines.state_dir),
            ("CANON_PIPELINE_ENROLLMENT", &pipelines.enrollment),
        ] {
            if !path.is_absolute() || path.parent().is_none() {
                problems.push(format!("{name} {path:?}: must be an absolute path"));
            }
        }
        if pipelines.image.is_empty() || pipelines.image.chars().any(char::is_whitespace) {
            problems.push("CANON_PIPELINE_IMAGE: must be an image name without spaces");
        }
        if !pipelines
            .secret_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            problems.push("CANON_PIPELINE_SECRET_PREFIX: only letters, digits, `_` and `-`");
        }
        if purpose == Purpose::Serve {
            problems.append(serve_problems);
        }
        problems.into_result()?;
        Ok(Settings {
            // The default parses (a unit test checks it), so the fallback is never used.
            bind: v
                .address("CANON_BIND")
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8088))),
            state_dir: v.path("CANON_STATE_DIR").unwrap_or_default(),
            state_repo: v.text("CANON_STATE_REPO"),
            enrollment: v.path("CANON_ENROLLMENT").unwrap_or_default(),
            webhook_secrets,
            forge_url,
            forge_token,
            mirror_url: v.text("CANON_MIRROR_URL"),
            mirror_token: v.secret("CANON_MIRROR_TOKEN"),
            ssh_key: v.path("CANON_SSH_KEY"),
            known_hosts: v.path("CANON_KNOWN_HOSTS"),
            drone: DroneSettings {
                server: v.text("CANON_DRONE_SERVER").unwrap_or_default(),
                token: v.secret("CANON_DRONE_TOKEN").unwrap_or_default(),
                repo: drone_repo.unwrap_or_default(),
                branch: v.text("CANON_DRONE_BRANCH").unwrap_or_default(),
            },
            workers: v.number("CANON_WORKERS") as usize,
            retry,
            retention: v.duration("CANON_RETENTION"),
            public_url: v.text("CANON_PUBLIC_URL"),
            admin_token,
            log: v.text("CANON_LOG").unwrap_or_default(),
            http: HttpLimits {
                max_connections: v.number("CANON_MAX_CONNECTIONS") as usize,
                header_timeout: v.duration("CANON_HEADER_TIMEOUT"),
                request_deadline: v.duration("CANON_REQUEST_DEADLINE"),
                shutdown_deadline: v.duration("CANON_SHUTDOWN_DEADLINE"),
            },
            drone_config_secret,
            pipelines,
            poll_interval: v.duration("CANON_POLL_INTERVAL"),
        })
    }

    /// Returns the path of the journal database.
    pub fn journal_path(&self) -> PathBuf {
        self.state_dir.join("listener.sqlite3")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const GOOD: &[(&str, &str)] = &[
        ("CANON_ENROLLMENT", "/etc/canon/enrollment.yml"),
        (
            "CANON_WEBHOOK_SECRETS",
            "0123456789abcdef, fedcba9876543210",
        ),
        ("CANON_DRONE_SERVER", "https://drone.example/"),
        ("CANON_DRONE_TOKEN", "tok"),
        ("CANON_DRONE_REPO", "canon/ci"),
        ("HOME", "/root"),
    ];

    #[test]
    fn defaults_apply_and_secrets_rotate() {
        let s = Settings::from_pairs(pairs(GOOD)).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8088");
        assert_eq!(s.state_dir, PathBuf::from("./canon-state"));
        assert_eq!(s.webhook_secrets.len(), 2);
        assert_eq!(s.drone.server, "https://drone.example");
        assert_eq!(s.drone.branch, "main");
        assert_eq!(s.workers, 2);
        assert_eq!(s.retry.max_attempts, 8);
        assert_eq!(s.retention, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(s.http, HttpLimits::default());
        assert_eq!(s.http.max_connections, 256);
        assert!(s.http.header_timeout <= Duration::from_secs(10));
        assert!(s.http.request_deadline <= Duration::from_secs(30));
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Settings::from_pairs(pairs(&[
            ("CANON_BIND", "nowhere"),
            ("CANON_WORKERS", "0"),
            ("CANON_RETRY_BASE", "soon"),
            ("CANON_RETENTION", "forever"),
            ("CANON_DRONE_REPO", "flat"),
            ("CANON_FORGE_URL", "ftp://x"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for want in [
            "CANON_BIND",
            "CANON_ENROLLMENT",
            "CANON_WEBHOOK_SECRETS",
            "CANON_DRONE_SERVER",
            "CANON_DRONE_TOKEN",
            "CANON_DRONE_REPO \"flat\"",
            "CANON_WORKERS",
            "CANON_RETRY_BASE",
            "CANON_RETENTION",
            "CANON_FORGE_URL",
        ] {
            assert!(text.contains(want), "{want} missing from {text}");
        }
    }

    #[test]
    fn each_problem_reads_as_it_always_has() {
        let err = Settings::from_pairs(pairs(&[
            ("CANON_BIND", "nowhere"),
            ("CANON_WORKERS", "0"),
            ("CANON_RETRY_BASE", "soon"),
            ("CANON_FORGE_URL", "ftp://x"),
            ("CANON_DRONE_REPO", "flat"),
            ("CANON_MAX_CONNECTIONS", "0"),
        ]))
        .unwrap_err();
        for line in [
            "CANON_WORKERS \"0\": must be a whole number from 1 to 1000",
            "CANON_MAX_CONNECTIONS \"0\": must be a whole number from 1 to 65536",
            "CANON_RETRY_BASE \"soon\": must be a duration such as 10s, 500ms or 15m",
            "CANON_FORGE_URL: must be an http(s) URL without credentials",
            "CANON_DRONE_REPO \"flat\": must be owner/name",
            "CANON_ENROLLMENT is not set: give the enrollment file",
            "CANON_DRONE_SERVER is not set: give the Drone server URL",
            "CANON_DRONE_TOKEN is not set: give a Drone API token",
        ] {
            assert!(err.problems.iter().any(|p| p == line), "{line:?} in {err}");
        }
        assert!(err
            .problems
            .iter()
            .any(|p| p.starts_with("CANON_BIND \"nowhere\": not an address:port (")));
        assert!(
            err.to_string().starts_with("invalid settings:\n  - "),
            "{err}"
        );
    }

    #[test]
    fn urls_with_any_user_info_are_refused_without_showing_it() {
        for (key, value) in [
            ("CANON_DRONE_SERVER", "https://s3cr3t@drone.example"),
            ("CANON_DRONE_SERVER", "https://u:s3cr3t@drone.example"),
            ("CANON_FORGE_URL", "https://s3cr3t@git.example"),
            ("CANON_MIRROR_URL", "http://s3cr3t@[bad"),
        ] {
            let mut list = GOOD.to_vec();
            list.retain(|(k, _)| *k != key);
            list.push((key, value));
            let text = Settings::from_pairs(pairs(&list)).unwrap_err().to_string();
            assert!(text.contains(key), "{value}: {text}");
            assert!(!text.contains("s3cr3t"), "{value}: {text}");
        }
    }

    #[test]
    fn registering_hooks_does_not_need_drone_but_serving_does() {
        let no_drone: Vec<_> = GOOD
            .iter()
            .filter(|(k, _)| !k.starts_with("CANON_DRONE_"))
            .copied()
            .collect();
        assert!(Settings::from_pairs_for(pairs(&no_drone), Purpose::RegisterHooks).is_ok());
        let err = Settings::from_pairs(pairs(&no_drone))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CANON_DRONE_SERVER"), "{err}");
        // An invalid value is still a problem, whatever the purpose.
        let mut bad = no_drone.clone();
        bad.push(("CANON_DRONE_REPO", "flat"));
        let err = Settings::from_pairs_for(pairs(&bad), Purpose::RegisterHooks)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CANON_DRONE_REPO \"flat\""), "{err}");
    }

    #[test]
    fn a_missing_or_short_webhook_secret_refuses_to_start() {
        let mut p: Vec<_> = GOOD
            .iter()
            .filter(|(k, _)| *k != "CANON_WEBHOOK_SECRETS")
            .copied()
            .collect();
        p.push(("CANON_WEBHOOK_SECRETS", " , "));
        assert!(Settings::from_pairs(pairs(&p))
            .unwrap_err()
            .to_string()
            .contains("refusing"));
        p.pop();
        p.push(("CANON_WEBHOOK_SECRETS", "short"));
        let err = Settings::from_pairs(pairs(&p)).unwrap_err().to_string();
        assert!(
            err.contains("16 characters") && !err.contains("short"),
            "{err}"
        );
    }

    #[test]
    fn a_blank_admin_token_is_refused_like_a_short_one() {
        for blank in ["", "   ", "\t"] {
            let mut p = GOOD.to_vec();
            p.push(("CANON_ADMIN_TOKEN", blank));
            let err = Settings::from_pairs(pairs(&p))
                .expect_err("a blank admin token is refused")
                .to_string();
            assert!(err.contains("CANON_ADMIN_TOKEN is set but blank"), "{err}");
        }
    }

    #[test]
    fn the_admin_token_is_optional_secret_and_not_short() {
        assert!(Settings::from_pairs(pairs(GOOD))
            .unwrap()
            .admin_token
            .is_none());
        let mut p = GOOD.to_vec();
        p.push(("CANON_ADMIN_TOKEN", "admin-token-0123456789"));
        let s = Settings::from_pairs(pairs(&p)).unwrap();
        assert_eq!(
            s.admin_token.as_ref().map(Secret::expose),
            Some("admin-token-0123456789")
        );
        assert!(!format!("{s:?}").contains("admin-token-0123456789"));
        p.pop();
        p.push(("CANON_ADMIN_TOKEN", "shorty"));
        let err = Settings::from_pairs(pairs(&p)).unwrap_err().to_string();
        assert!(
            err.contains("CANON_ADMIN_TOKEN") && !err.contains("shorty"),
            "{err}"
        );
    }

    #[test]
    fn polling_is_on_by_default_and_zero_turns_it_off() {
        let s = Settings::from_pairs(pairs(GOOD)).unwrap();
        assert_eq!(s.poll_interval, Duration::from_secs(600));
        for (value, want) in [
            ("0", Some(Duration::ZERO)),
            ("90s", Some(Duration::from_secs(90))),
            ("0s", None),
            ("soon", None),
        ] {
            let mut p = GOOD.to_vec();
            p.push(("CANON_POLL_INTERVAL", value));
            match (Settings::from_pairs(pairs(&p)), want) {
                (Ok(s), Some(d)) => assert_eq!(s.poll_interval, d, "{value}"),
                (Err(e), None) => assert!(
                    e.to_string().contains("CANON_POLL_INTERVAL \"")
                        && e.to_string().contains("or 0 for off"),
                    "{value}: {e}"
                ),
                (got, _) => panic!("{value}: {got:?}"),
            }
        }
    }

    #[test]
    fn the_served_pipelines_default_to_this_release_s_image_and_the_usual_paths() {
        let s = Settings::from_pairs(pairs(GOOD)).unwrap();
        assert_eq!(s.pipelines, PipelineSettings::default());
        assert_eq!(
            s.pipelines.image,
            format!("canon-plugin:{}", env!("CARGO_PKG_VERSION"))
        );
        assert!(s.drone_config_secret.is_none());
        let mut p = GOOD.to_vec();
        p.extend([
            ("CANON_DRONE_CONFIG_SECRET", "short"),
            ("CANON_PIPELINE_STATE_DIR", "relative/state"),
            ("CANON_PIPELINE_IMAGE", "has space"),
            ("CANON_PIPELINE_SECRET_PREFIX", "a b"),
        ]);
        let err = Settings::from_pairs(pairs(&p)).unwrap_err().to_string();
        for want in [
            "CANON_DRONE_CONFIG_SECRET: must be at least 16 characters",
            "CANON_PIPELINE_STATE_DIR",
            "CANON_PIPELINE_IMAGE",
            "CANON_PIPELINE_SECRET_PREFIX",
        ] {
            assert!(err.contains(want), "{want} in {err}");
        }
        assert!(!err.contains("short"), "{err}");
    }

    #[test]
    fn known_hosts_is_an_optional_path() {
        let unset = Settings::from_pairs(pairs(GOOD)).unwrap();
        assert_eq!(unset.known_hosts, None);
        let mut p = GOOD.to_vec();
        p.push(("CANON_KNOWN_HOSTS", "/etc/canon/known_hosts"));
        let set = Settings::from_pairs(pairs(&p)).unwrap();
        assert_eq!(
            set.known_hosts,
            Some(PathBuf::from("/etc/canon/known_hosts"))
        );
    }

    #[test]
    fn retention_is_a_duration_like_the_retry_delays() {
        let cases: &[(&str, &str, Option<Duration>)] = &[
            (
                "days are accepted",
                "7days",
                Some(Duration::from_secs(7 * 24 * 3600)),
            ),
            (
                "a short form is accepted",
                "12h",
                Some(Duration::from_secs(12 * 3600)),
            ),
            ("zero keeps nothing and is refused", "0s", None),
            ("a bare number has no unit and is refused", "30", None),
        ];
        for (says, value, want) in cases {
            let mut p = GOOD.to_vec();
            p.push(("CANON_RETENTION", value));
            match (Settings::from_pairs(pairs(&p)), want) {
                (Ok(s), Some(d)) => assert_eq!(s.retention, *d, "{says}"),
                (Err(e), None) => assert!(e.to_string().contains("CANON_RETENTION"), "{says}: {e}"),
                (got, _) => panic!("{says}: {got:?}"),
            }
        }
    }

    #[test]
    fn env_vars_lists_every_field() {
        for name in ENV_VARS {
            assert!(name.starts_with("CANON_"));
        }
        assert_eq!(ENV_VARS.len(), 34);
    }

    #[test]
    fn connection_limits_are_bounded_and_reported_by_name() {
        let cases: &[(&str, &str, &str, bool)] = &[
            ("a cap is a number", "CANON_MAX_CONNECTIONS", "1024", true),
            (
                "a cap of zero serves nobody",
                "CANON_MAX_CONNECTIONS",
                "0",
                false,
            ),
            (
                "a cap has a ceiling",
                "CANON_MAX_CONNECTIONS",
                "100000",
                false,
            ),
            ("a short header timeout", "CANON_HEADER_TIMEOUT", "2s", true),
            (
                "a long header timeout is refused",
                "CANON_HEADER_TIMEOUT",
                "5m",
                false,
            ),
            (
                "no header timeout is refused",
                "CANON_HEADER_TIMEOUT",
                "0s",
                false,
            ),
            ("a request deadline", "CANON_REQUEST_DEADLINE", "15s", true),
            (
                "a bare number is refused",
                "CANON_SHUTDOWN_DEADLINE",
                "10",
                false,
            ),
        ];
        for (says, name, value, ok) in cases {
            let mut p = GOOD.to_vec();
            p.push((name, value));
            match Settings::from_pairs(pairs(&p)) {
                Ok(_) if *ok => {}
                Err(e) if !*ok => assert!(e.to_string().contains(name), "{says}: {e}"),
                got => panic!("{says}: {got:?}"),
            }
        }
        let mut p = GOOD.to_vec();
        p.extend([
            ("CANON_MAX_CONNECTIONS", "64"),
            ("CANON_HEADER_TIMEOUT", "2s"),
        ]);
        let s = Settings::from_pairs(pairs(&p)).unwrap();
        assert_eq!(s.http.max_connections, 64);
        assert_eq!(s.http.header_timeout, Duration::from_secs(2));
    }
}
