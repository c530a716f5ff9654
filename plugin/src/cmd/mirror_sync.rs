//! `canon-plugin mirror-sync`: make mirrors equal to upstream for the branch and all tags.
//!
//! Two forms:
//! - `--upstream URL --mirror URL [--branch main] [--cache DIR]`: one repository pair.
//! - `--config ENROLLMENT [--jobs N] [--state-dir DIR]`: every enrolled recipe, at most `N` at a
//!   time, one line per recipe as it finishes and a total; one recipe failing never stops others.
//!
//! Tokens come only from the environment (`PLUGIN_UPSTREAM_TOKEN`, `PLUGIN_MIRROR_TOKEN`; the
//! old `CANON_*` names are read until the next release, with a warning), never from flags, so
//! they do not show in process listings. `--state-dir`, `--ssh-key-file` and the tokens are
//! built from and read by the settings table ([`crate::settings::KNOWN_SETTINGS`]). After a sync, open mirror PRs whose head
//! upstream has merged are closed when the mirror's forge is known (`--mirror-forge` and
//! `--mirror-repo`, or the enrollment's forge and `owner/name`) and a mirror token is set.
//!
//! Exit 0 when every mirror is faithful, 1 when any sync (or PR close) failed, 2 on bad usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use canon_shared::mirror::{self, Credentials, SyncReport, SyncRequest};
use canon_shared::recipe::{Enrollment, RecipeName};
use canon_shared::secret::Secret;
use canon_shared::trigger::{self, MirrorPrs};

use crate::exit::{error_chain, EXIT_RED, EXIT_USAGE};
use crate::settings::{
    MirrorSync as MirrorSyncSettings, SubcommandFlags, SubcommandValues, Variables,
};

/// Arguments of `mirror-sync`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["upstream", "config"])))]
pub struct Args {
    /// The upstream repository (URL or local path). Token: env PLUGIN_UPSTREAM_TOKEN.
    #[arg(long, requires = "mirror", conflicts_with = "config")]
    pub upstream: Option<String>,
    /// The mirror repository (URL or local path). Token: env PLUGIN_MIRROR_TOKEN.
    #[arg(long, requires = "upstream", conflicts_with = "config")]
    pub mirror: Option<String>,
    /// The branch kept equal to upstream's.
    #[arg(long, default_value = "main", conflicts_with = "config")]
    pub branch: String,
    /// The bare cache for this pair (reused between runs so only new objects move). Default: a
    /// temporary folder, so every run fetches everything.
    #[arg(long, conflicts_with = "config")]
    pub cache: Option<PathBuf>,
    /// The mirror's forge base URL, to close PRs merged upstream (with --mirror-repo).
    #[arg(long, requires = "mirror_repo", conflicts_with = "config")]
    pub mirror_forge: Option<String>,
    /// The mirror's `owner/name` on its forge (with --mirror-forge).
    #[arg(long, requires = "mirror_forge", conflicts_with = "config")]
    pub mirror_repo: Option<String>,
    /// The enrollment file: sync every enrolled recipe.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// With --config: how many recipes sync at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// With --config, the state directory (caches live at `<state>/<recipe>/upstream.git`); the
    /// SSH key file and the tokens: from [`crate::settings::KNOWN_SETTINGS`].
    #[command(flatten)]
    pub settings: SubcommandFlags<MirrorSyncSettings>,
    /// With --config: only these recipes (repeatable).
    #[arg(long = "only", value_name = "RECIPE")]
    pub only: Vec<RecipeName>,
    /// The old name of `--ssh-key-file`, read until the next release with a warning (`--ssh-key`
    /// is the key itself in `run` and `sweep`).
    #[arg(long = "ssh-key", value_name = "PATH", hide = true)]
    pub old_ssh_key: Option<PathBuf>,
    /// An OpenSSH known_hosts file that alone decides which SSH host keys are trusted (both
    /// sides). Default: `~/.ssh/known_hosts`.
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Do not close mirror PRs merged upstream.
    #[arg(long)]
    pub no_close_prs: bool,
    /// Print each report as one JSON line on stdout instead of a text line.
    #[arg(long)]
    pub json: bool,
}

/// Credentials read once from the flags and the environment.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// PLUGIN_UPSTREAM_TOKEN.
    pub upstream: Option<Secret>,
    /// PLUGIN_MIRROR_TOKEN.
    pub mirror: Option<Secret>,
    /// `--ssh-key-file` (PLUGIN_SSH_KEY_FILE): a private key file for SSH remotes.
    pub ssh_key_file: Option<PathBuf>,
}

impl Tokens {
    /// Returns the credentials of `values` (read by the settings table, blank values unset);
    /// `old_ssh_key` is the value of the old `--ssh-key` flag, used (with a warning) when
    /// `--ssh-key-file` is not given.
    pub fn from_values(values: &SubcommandValues, old_ssh_key: Option<&Path>) -> Self {
        let ssh_key_file = values.path("ssh_key_file").or_else(|| {
            let path = old_ssh_key?;
            tracing::warn!("--ssh-key PATH is read until the next release only: give --ssh-key-file PATH (--ssh-key is the key itself in `run` and `sweep`).");
            Some(path.to_path_buf())
        });
        Tokens {
            upstream: values.secret("upstream_token"),
            mirror: values.secret("mirror_token"),
            ssh_key_file,
        }
    }
}

/// One pair to sync, with what is needed to close merged PRs afterwards.
#[derive(Debug, Clone)]
struct Job {
    label: String,
    request: SyncRequest,
    /// (forge base URL, owner/name) of the mirror, when PRs should be closed.
    close_on: Option<(String, String)>,
}

/// The outcome of one job, printed as one line.
#[derive(Debug, serde::Serialize)]
struct Outcome {
    recipe: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<SyncReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    closed_prs: Option<mirror::CloseReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs `mirror-sync`; its settings not given as flags come from `vars`.
pub fn main(args: Args, vars: &Variables) -> ExitCode {
    let values = args.settings.read(vars);
    let tokens = Tokens::from_values(&values, args.old_ssh_key.as_deref());
    // The table gives it a default, so it is never unset.
    let state_dir = values.path("state_dir").unwrap_or_default();
    let mut temp_cache = None;
    let jobs = match build_jobs(&args, &state_dir, &tokens, &mut temp_cache) {
        Ok(jobs) => jobs,
        Err(msg) => {
            canon_shared::errln!("error: {msg}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // With an enrollment, the caches live in the state dir, which only a first promote creates.
    if args.config.is_some() {
        if let Err(why) = super::require_state_dir(&state_dir) {
            canon_shared::errln!("error: {why}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let started = Instant::now();
    let single = args.config.is_none();
    let outcomes = run_jobs(&jobs, usize::from(args.jobs), &tokens, args.json);
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    let no_op = outcomes
        .iter()
        .filter(|o| o.report.as_ref().is_some_and(|r| r.no_op))
        .count();
    if !single || failed > 0 {
        let line = format!(
            "mirror-sync: {} recipes, {} ok ({} no-op), {} failed, {:.2} s",
            outcomes.len(),
            outcomes.len() - failed,
            no_op,
            failed,
            started.elapsed().as_secs_f64()
        );
        if args.json {
            canon_shared::errln!("{line}");
        } else {
            canon_shared::outln!("{line}");
        }
    }
    if let Some(dir) = temp_cache {
        let _ = std::fs::remove_dir_all(dir);
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RED)
    }
}

/// Returns the credentials for every remote: the tokens from the environment, the SSH settings
/// from the flags.
fn credentials(args: &Args, tokens: &Tokens) -> Credentials {
    Credentials {
        upstream_token: tokens.upstream.clone(),
        mirror_token: tokens.mirror.clone(),
        ssh_key: tokens.ssh_key_file.clone(),
        known_hosts: args.known_hosts.clone(),
        // Each token goes to the URL given for its side on the command line, and only there
        // (with --config, to the enrollment's forge for that side).
        upstream_base: args.upstream.clone(),
        mirror_base: args.mirror.clone(),
    }
}

fn build_jobs(
    args: &Args,
    state_dir: &Path,
    tokens: &Tokens,
    temp_cache: &mut Option<PathBuf>,
) -> Result<Vec<Job>, String> {
    let mut credentials = credentials(args, tokens);
    if let Some(path) = &args.config {
        let enrollment = Enrollment::load(path).map_err(|e| e.to_string())?;
        let bases = enrollment.token_bases();
        credentials.upstream_base = bases.upstream;
        credentials.mirror_base = bases.mirror;
        for name in &args.only {
            if enrollment.get(name).is_none() {
                return Err(format!(
                    "recipe `{name}` is not enrolled in {}",
                    path.display()
                ));
            }
        }
        return Ok(enrollment
            .recipes
            .iter()
            .filter(|r| args.only.is_empty() || args.only.contains(&r.name))
            .map(|r| Job {
                label: r.name.to_string(),
                request: trigger::sync_request(r, &credentials, state_dir),
                close_on: match (&r.mirror.forge, &r.mirror.full_name) {
                    (Some(f), Some(n)) if !args.no_close_prs => Some((f.clone(), n.clone())),
                    _ => None,
                },
            })
            .collect());
    }
    let (Some(upstream), Some(mirror_url)) = (&args.upstream, &args.mirror) else {
        return Err("give --upstream and --mirror, or --config".into());
    };
    let cache = match &args.cache {
        Some(c) => c.clone(),
        None => {
            let dir = std::env::temp_dir().join(format!(
                "canon-mirror-cache-{}-{}",
                std::process::id(),
                started_nanos()
            ));
            *temp_cache = Some(dir.clone());
            dir.join("upstream.git")
        }
    };
    let up = credentials.upstream_remote(upstream);
    Ok(vec![Job {
        label: up.display_url(),
        request: SyncRequest {
            upstream: up,
            mirror: credentials.mirror_remote(mirror_url),
            branch: args.branch.clone(),
            cache_dir: cache,
        },
        close_on: match (&args.mirror_forge, &args.mirror_repo) {
            (Some(f), Some(n)) if !args.no_close_prs => Some((f.clone(), n.clone())),
            _ => None,
        },
    }])
}

fn started_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Runs the jobs on at most `jobs` threads, printing each outcome as it finishes.
fn run_jobs(jobs: &[Job], workers: usize, tokens: &Tokens, json: bool) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, jobs.len().max(1)) {
            s.spawn(|| {
                // One small runtime per thread drives its jobs through the trigger path.
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the async runtime: {e}"));
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let outcome = match &rt {
                        Ok(rt) => run_one(job, tokens, rt),
                        Err(e) => Outcome::failed(job, e.clone()),
                    };
                    print_outcome(&outcome, json);
                    // A poisoned lock only means another worker panicked; keep its results anyway.
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((i, outcome));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, o)| o).collect()
}

impl Outcome {
    /// Returns the outcome of `job` when it failed with `error` before any report.
    fn failed(job: &Job, error: String) -> Self {
        Outcome {
            recipe: job.label.clone(),
            ok: false,
            report: None,
            closed_prs: None,
            error: Some(error),
        }
    }
}

fn run_one(job: &Job, tokens: &Tokens, rt: &tokio::runtime::Runtime) -> Outcome {
    // Closing needs the mirror token; without one the sync still runs (and says so after).
    let prs = match (&job.close_on, &tokens.mirror) {
        (Some((base, repo)), Some(token)) => {
            Some(MirrorPrs::on(base, repo.as_str(), token.clone()).map_err(|e| e.to_string()))
        }
        _ => None,
    };
    let tidy = prs.as_ref().and_then(|p| p.as_ref().ok());
    let tidied = match rt.block_on(trigger::sync_and_tidy(job.request.clone(), tidy)) {
        Ok(t) => t,
        Err(e) => return Outcome::failed(job, error_chain(&e)),
    };
    let mut out = Outcome {
        recipe: job.label.clone(),
        ok: false,
        report: None,
        closed_prs: None,
        error: None,
    };
    match (prs, tidied.prs) {
        (Some(Err(e)), _) => out.error = Some(e),
        (_, Some(Ok(closed))) => {
            if !closed.failed.is_empty() {
                out.error = Some(format!(
                    "could not close PRs merged upstream: {}",
                    closed
                        .failed
                        .iter()
                        .map(|f| format!("#{}: {}", f.number, f.error))
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
            out.closed_prs = Some(closed);
        }
        (_, Some(Err(e))) => {
            out.error = Some(format!("closing PRs merged upstream: {}", error_chain(&e)))
        }
        (_, None) => {
            if let Some((_, repo)) = &job.close_on {
                tracing::warn!(
                    repo = repo.as_str(),
                    "No PLUGIN_MIRROR_TOKEN: not closing PRs merged upstream."
                );
            }
        }
    }
    out.ok = out.error.is_none();
    out.report = Some(tidied.sync);
    out
}

fn print_outcome(o: &Outcome, json: bool) {
    if json {
        match serde_json::to_string(o) {
            Ok(line) => canon_shared::outln!("{line}"),
            Err(e) => canon_shared::errln!("error: cannot encode the report of {}: {e}", o.recipe),
        }
        return;
    }
    match (&o.report, &o.error) {
        (Some(r), None) => {
            let mut line = format!("ok   {}: {}", o.recipe, r.summary());
            if let Some(c) = &o.closed_prs {
                if !c.closed.is_empty() {
                    let n: Vec<String> =
                        c.closed.iter().map(|p| format!("#{}", p.number)).collect();
                    line.push_str(&format!("; closed PRs merged upstream: {}", n.join(" ")));
                }
            }
            canon_shared::outln!("{line}");
        }
        (_, Some(e)) => canon_shared::outln!("FAIL {}: {e}", o.recipe),
        (None, None) => canon_shared::outln!("FAIL {}: no report", o.recipe),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn tokens(args: &[&str], vars: &[(&str, &str)]) -> Tokens {
        let cli = Cli::try_parse_from(
            ["mirror-sync", "--config", "e.yml"]
                .into_iter()
                .chain(args.iter().copied()),
        )
        .unwrap();
        let values = cli
            .args
            .settings
            .read(&Variables::from_pairs(vars.iter().copied()));
        Tokens::from_values(&values, cli.args.old_ssh_key.as_deref())
    }

    #[test]
    fn tokens_come_from_the_two_variables_and_empty_means_unset() {
        let t = tokens(
            &[],
            &[
                ("PLUGIN_UPSTREAM_TOKEN", "u"),
                ("PLUGIN_MIRROR_TOKEN", ""),
                ("OTHER", "x"),
            ],
        );
        assert_eq!(t.upstream.as_ref().map(|s| s.expose()), Some("u"));
        assert!(t.mirror.is_none());
    }

    #[test]
    fn the_ssh_key_file_is_a_path_and_the_old_flag_still_gives_it() {
        let t = tokens(&["--ssh-key-file", "/k"], &[]);
        assert_eq!(t.ssh_key_file, Some(PathBuf::from("/k")));
        let t = tokens(&[], &[("PLUGIN_SSH_KEY_FILE", "/from-env")]);
        assert_eq!(t.ssh_key_file, Some(PathBuf::from("/from-env")));
        let t = tokens(&["--ssh-key", "/old"], &[]);
        assert_eq!(t.ssh_key_file, Some(PathBuf::from("/old")));
        let t = tokens(&["--ssh-key", "/old", "--ssh-key-file", "/new"], &[]);
        assert_eq!(t.ssh_key_file, Some(PathBuf::from("/new")));
    }
}
