//! The raw environment: `PLUGIN_*` (envy) and the `run`/`sweep` flags (clap) as strings
//! ([`RawSettings`]), and Drone's build metadata with the listener's `CANON_*` build parameters
//! ([`DroneMeta`]), read once into an [`Environment`].
//!
//! Nothing here judges a value: an empty one is unset (Drone sets a `from_secret` whose secret is
//! missing to `""`), everything else is carried as text to [`super::Settings::parse`].

use serde::Deserialize;

use super::table::setting_doc;

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
    /// The git state repository (instead of the state dir's records).
    #[arg(long)]
    pub state_repo: Option<String>,
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
    /// A ref run starts from the canonical's warm data when there is some (default true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", conflicts_with = "cold")]
    pub warm: Option<String>,
    /// A ref run installs fresh, as if `warm` were false (a flag only).
    #[serde(skip)]
    #[arg(long)]
    pub cold: bool,
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
    /// Token for upstream repositories (prefer `--upstream-token-file`: flags show in `ps`).
    #[arg(long)]
    pub upstream_token: Option<String>,
    /// A file holding the upstream token (trimmed).
    #[arg(long, value_name = "PATH")]
    pub upstream_token_file: Option<String>,
    /// Token for mirror repositories (prefer `--mirror-token-file`: flags show in `ps`).
    #[arg(long)]
    pub mirror_token: Option<String>,
    /// A file holding the mirror token (trimmed).
    #[arg(long, value_name = "PATH")]
    pub mirror_token_file: Option<String>,
    /// A private SSH key, the key itself (prefer `--ssh-key-file`: flags show in `ps`).
    #[arg(long)]
    pub ssh_key: Option<String>,
    /// A file holding the private SSH key (read as is).
    #[arg(long, value_name = "PATH")]
    pub ssh_key_file: Option<String>,
    /// An OpenSSH known_hosts file trusted for SSH host keys (instead of `~/.ssh/known_hosts`).
    #[arg(long)]
    pub known_hosts: Option<String>,
    /// Sweep: base URL of the mirrors' forge API.
    #[arg(long)]
    pub mirror_forge: Option<String>,
    /// Sweep: recipes at once.
    #[arg(long)]
    pub jobs: Option<String>,
    /// Sweep: how long one recipe may take in all.
    #[arg(long)]
    pub recipe_deadline: Option<String>,
    /// Sweep: change nothing.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub dry_run: Option<String>,
    /// Sweep: run tag mode in-process.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub inline: Option<String>,
    /// Sweep: the Drone server.
    #[arg(long)]
    pub drone_server: Option<String>,
    /// Sweep: a Drone API token (prefer `--drone-token-file`: flags show in `ps`).
    #[arg(long)]
    pub drone_token: Option<String>,
    /// Sweep: a file holding the Drone API token (trimmed).
    #[arg(long, value_name = "PATH")]
    pub drone_token_file: Option<String>,
    /// Sweep: `owner/name` of the Drone repository.
    #[arg(long)]
    pub drone_repo: Option<String>,
    /// Sweep: the branch of the Drone repository.
    #[arg(long)]
    pub drone_branch: Option<String>,
    /// Sweep: base URL of canon-listener's HTTP API (e.g. `http://127.0.0.1:8088`).
    #[arg(long)]
    pub listener_url: Option<String>,
    /// Sweep: the listener's admin token (prefer `--listener-token-file`: flags show in `ps`).
    #[arg(long)]
    pub listener_token: Option<String>,
    /// Sweep: a file holding the listener's admin token (trimmed).
    #[arg(long, value_name = "PATH")]
    pub listener_token_file: Option<String>,
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
            warm: pick(self.warm, fallback.warm),
            cold: self.cold || fallback.cold,
            runner: pick(self.runner, fallback.runner),
            command: pick(self.command, fallback.command),
            promote_command: pick(self.promote_command, fallback.promote_command),
            env: pick(self.env, fallback.env),
            timeout: pick(self.timeout, fallback.timeout),
            lock_wait: pick(self.lock_wait, fallback.lock_wait),
            state_repo: pick(self.state_repo, fallback.state_repo),
            report: pick(self.report, fallback.report),
            work_dir: pick(self.work_dir, fallback.work_dir),
            keep_work_dir: pick(self.keep_work_dir, fallback.keep_work_dir),
            upstream_token: pick(self.upstream_token, fallback.upstream_token),
            upstream_token_file: pick(self.upstream_token_file, fallback.upstream_token_file),
            mirror_token: pick(self.mirror_token, fallback.mirror_token),
            mirror_token_file: pick(self.mirror_token_file, fallback.mirror_token_file),
            ssh_key: pick(self.ssh_key, fallback.ssh_key),
            ssh_key_file: pick(self.ssh_key_file, fallback.ssh_key_file),
            known_hosts: pick(self.known_hosts, fallback.known_hosts),
            jobs: pick(self.jobs, fallback.jobs),
            recipe_deadline: pick(self.recipe_deadline, fallback.recipe_deadline),
            dry_run: pick(self.dry_run, fallback.dry_run),
            inline: pick(self.inline, fallback.inline),
            drone_server: pick(self.drone_server, fallback.drone_server),
            mirror_forge: pick(self.mirror_forge, fallback.mirror_forge),
            drone_token: pick(self.drone_token, fallback.drone_token),
            drone_token_file: pick(self.drone_token_file, fallback.drone_token_file),
            drone_repo: pick(self.drone_repo, fallback.drone_repo),
            drone_branch: pick(self.drone_branch, fallback.drone_branch),
            listener_url: pick(self.listener_url, fallback.listener_url),
            listener_token: pick(self.listener_token, fallback.listener_token),
            listener_token_file: pick(self.listener_token_file, fallback.listener_token_file),
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

/// Returns `None` for `None` or an empty (or all-blank) value.
pub(super) fn unset_if_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// Returns a `DRONE_*` or `CANON_*` value, `None` when it is unset or blank.
pub(super) fn drone_value(v: &Option<String>) -> Option<String> {
    unset_if_empty(v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_plugin_settings_are_listed() {
        let e = Environment::from_pairs([("PLUGIN_PROMOTE_COMAND", "x"), ("PLUGIN_RECIPE", "a")])
            .unwrap();
        assert_eq!(e.unknown, ["PLUGIN_PROMOTE_COMAND"]);
    }

    /// The `run` and `sweep` subcommands flatten [`RawSettings`] like this.
    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[command(flatten)]
        raw: RawSettings,
    }

    #[test]
    fn every_documented_flag_is_a_flag() {
        use clap::Parser;
        for s in crate::settings::KNOWN_SETTINGS {
            let arg = format!("{}=x", s.flag);
            let parsed = Flags::try_parse_from(["canon-plugin", arg.as_str()]);
            assert!(parsed.is_ok(), "{}: {}", s.flag, parsed.unwrap_err());
        }
        let f = Flags::try_parse_from(["canon-plugin", "--listener-url", "http://l:8088"]).unwrap();
        assert_eq!(f.raw.listener_url.as_deref(), Some("http://l:8088"));
    }

    #[test]
    fn plugin_listener_url_is_read() {
        let e = Environment::from_pairs([("PLUGIN_LISTENER_URL", "http://l:8088")]).unwrap();
        assert_eq!(e.plugin.listener_url.as_deref(), Some("http://l:8088"));
        assert!(e.unknown.is_empty(), "{:?}", e.unknown);
    }
}
