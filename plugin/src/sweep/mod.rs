//! The weekly sweep: for every enrolled recipe, sync its mirror, find the latest upstream release
//! and, when it is newer than the canonical, get it tested and promoted.
//!
//! Webhooks get lost (Gitea never retries; a Gitea bug drops `create` for pushed tags), so the
//! sweep is the safety net, not an optimisation. It fails loudly rather than "sweep nothing and
//! report success": an enrollment with no recipes is an error, and any recipe's error makes the
//! exit code non-zero while the other recipes still finish.
//!
//! Two phases. Deciding (mirror sync, tag listing, the sweep decision) runs for all recipes with
//! bounded concurrency. Acting either starts one Drone build per recipe and tag, or runs tag mode
//! in-process one recipe at a time (runs share the Docker engine and the disk). The sync and the
//! build go through the trigger path the listener uses (`canon_shared::trigger`). A dry run
//! decides and reports and changes nothing: it lists refs instead of syncing, starts nothing and
//! writes nothing under the state directory.
//!
//! The flow lives here; [`report`] holds the report, its table and the exit code it means, and
//! `upkeep` the cleanup of killed runs, the free-space floor and the sizes the report shows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use canon_shared::commit::CommitId;
use canon_shared::drone::{BuildParams, DroneClient};
use canon_shared::forge::ForgeError;
use canon_shared::gate::{sweep_decision, SweepDecision};
use canon_shared::listener_api::ListenerClient;
use canon_shared::mirror::{self, CloseReport, Credentials, MirrorError};
use canon_shared::recipe::{Enrollment, Recipe};
use canon_shared::state::holds::{WarmHolds, WarmStatus};
use canon_shared::state::{self, MissedWebhook, StateDir};
use canon_shared::trigger::{self, BuildOnce, MirrorPrs, SyncError};
use canon_shared::version::{self, ReleaseVersion};

use crate::exit::{error_chain, report_error, EXIT_RED, EXIT_USAGE};
use crate::remotes::GitAccess;
use crate::settings::{RunnerKind, Settings};
use crate::tag_mode::{run_tag_mode, RunSettings};

pub mod report;
mod upkeep;

pub use report::{exit_code, table, RecipeEntry, SweepReport};
use upkeep::{cleanup, dir_size, disk_problem, warm_bytes};
pub use upkeep::{human_bytes, parse_df_available};

/// What the listener knows of a tag the sweep starts.
enum ListenerKnows {
    /// No `listener_url` is set.
    NotAsked,
    /// The listener has a job for the tag: its webhook arrived.
    Job,
    /// The listener has no job for the tag: its webhook was missed.
    NoJob,
    /// The listener did not answer (the error, one line).
    Unanswered(String),
}

/// Asks the listener (when one is configured) whether it has a job for `recipe` at `tag`.
async fn ask_listener(
    listener: Option<&ListenerClient>,
    recipe: &Recipe,
    tag: &ReleaseVersion,
) -> ListenerKnows {
    let Some(client) = listener else {
        return ListenerKnows::NotAsked;
    };
    match client.job_for(&recipe.name, &tag.to_string()).await {
        Ok(Some(_)) => ListenerKnows::Job,
        Ok(None) => ListenerKnows::NoJob,
        Err(e) => {
            tracing::warn!(recipe = %recipe.name, tag = %tag, error = %error_chain(&e), "The listener did not say whether it had the tag's webhook.");
            ListenerKnows::Unanswered(error_chain(&e))
        }
    }
}

/// How the sweep gets a tag tested.
enum Launch {
    DryRun,
    Drone { client: DroneClient, branch: String },
    Inline,
}

/// Runs a whole sweep with validated settings; returns the exit code.
pub fn main(settings: &Settings) -> u8 {
    let enrollment = match Enrollment::load(&settings.config) {
        Ok(e) => e,
        Err(e) => {
            // The hollow-sweep guard: a missing or empty enrollment never sweeps "nothing".
            report_error(&e);
            return EXIT_USAGE;
        }
    };
    let launch = match launch_from(settings) {
        Ok(l) => l,
        Err(problem) => {
            canon_shared::errln!("error: {problem}");
            return EXIT_USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            canon_shared::errln!("error: cannot start the async runtime: {e}");
            return EXIT_RED;
        }
    };
    // The SSH key file lives until the sweep ends.
    let access = match GitAccess::from_settings(settings) {
        Ok(a) => a.bind_to(&enrollment),
        Err(e) => {
            canon_shared::errln!("error: cannot write the SSH key to a private file: {e}");
            return EXIT_USAGE;
        }
    };
    let listener = match settings
        .listener_url
        .clone()
        .map(|url| {
            ListenerClient::new(url).map(|client| match &settings.listener_token {
                Some(token) => client.with_token(token.clone()),
                None => client,
            })
        })
        .transpose()
    {
        Ok(l) => l,
        Err(e) => {
            report_error(&e);
            return EXIT_USAGE;
        }
    };
    let report = runtime.block_on(sweep(
        settings,
        &enrollment,
        launch,
        access.credentials(),
        listener.as_ref(),
    ));
    if let Some(listener) = &listener {
        // The sweep's own outcome stands whether or not the listener hears of it.
        match runtime.block_on(listener.report_sweep(&report::outcome(&report))) {
            Ok(()) => tracing::info!("Reported the sweep to the listener."),
            Err(e) => tracing::warn!(error = %e, "Cannot report the sweep to the listener."),
        }
    }
    // A recipe stopped at its deadline may leave a blocking call behind (a git server that never
    // answers); dropping the runtime would wait for it. Its own timeouts end it, or the exit does.
    runtime.shutdown_background();
    canon_shared::outln!("{}", table(&report));
    let path = settings.report_path("sweep-report.json");
    match serde_json::to_vec_pretty(&report) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            if let Err(e) = std::fs::write(&path, bytes) {
                tracing::error!(path = %path.display(), error = %e, "Cannot write the sweep report.");
                return EXIT_RED;
            }
            tracing::info!(path = %path.display(), "Wrote the sweep report.");
        }
        Err(e) => {
            tracing::error!(error = %e, "Cannot encode the sweep report.");
            return EXIT_RED;
        }
    }
    exit_code(&report, settings.idle_exit_code)
}

fn launch_from(settings: &Settings) -> Result<Launch, String> {
    if settings.dry_run {
        return Ok(Launch::DryRun);
    }
    if settings.inline {
        return Ok(Launch::Inline);
    }
    let mut missing = Vec::new();
    if settings.drone_server.is_none() {
        missing.push("drone_server (PLUGIN_DRONE_SERVER, or DRONE_SYSTEM_PROTO/DRONE_SYSTEM_HOST)");
    }
    if settings.drone_token.is_none() {
        missing.push("drone_token (PLUGIN_DRONE_TOKEN)");
    }
    if settings.drone_repo.is_none() {
        missing.push("drone_repo (PLUGIN_DRONE_REPO or DRONE_REPO)");
    }
    match (&settings.drone_server, &settings.drone_token, &settings.drone_repo) {
        (Some(server), Some(token), Some(repo)) => {
            let client = DroneClient::new(server, token.clone(), repo)
                .map_err(|e| format!("drone settings: {e}"))?;
            Ok(Launch::Drone {
                client,
                branch: settings.drone_branch.clone(),
            })
        }
        _ => Err(format!(
            "the sweep starts Drone builds but these settings are missing: {}; or run it standalone with `inline: true` (`--inline`)",
            missing.join(", ")
        )),
    }
}

/// The sweep itself: decide for every recipe (bounded concurrency), then act.
async fn sweep(
    settings: &Settings,
    enrollment: &Enrollment,
    launch: Launch,
    credentials: &Credentials,
    listener: Option<&ListenerClient>,
) -> SweepReport {
    let started = Instant::now();
    let mut report = SweepReport {
        started_at: state::rfc3339(state::now()),
        config: settings.config.display().to_string(),
        dry_run: settings.dry_run,
        launch: match &launch {
            Launch::DryRun => "dry-run",
            Launch::Drone { .. } => "drone",
            Launch::Inline => "inline",
        }
        .into(),
        ..SweepReport::default()
    };
    if settings.runner == RunnerKind::Docker {
        let (lines, failed) = cleanup(settings).await;
        report.cleanup = lines;
        report.errors += usize::from(failed);
    }
    let settings_arc = Arc::new(settings.clone());
    let jobs = settings.jobs.unwrap_or(4).max(1);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut tasks = Vec::new();
    for recipe in &enrollment.recipes {
        let (settings, recipe, semaphore, credentials) = (
            settings_arc.clone(),
            recipe.clone(),
            semaphore.clone(),
            credentials.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            // The recipe's deadline covers its own time: its sync and decision here, then its
            // action (not the time it waits for the other recipes' decisions in between).
            let started = Instant::now();
            let decided = tokio::time::timeout(
                settings.recipe_deadline,
                decide(&settings, &recipe, &credentials),
            )
            .await
            .unwrap_or_else(|_| {
                Decided::failed(&recipe, past_deadline(settings.recipe_deadline, "sync"))
            });
            (
                decided,
                settings.recipe_deadline.saturating_sub(started.elapsed()),
            )
        }));
    }
    let mut decided = Vec::new();
    for (task, recipe) in tasks.into_iter().zip(&enrollment.recipes) {
        decided.push(match task.await {
            Ok(d) => d,
            Err(e) => (
                Decided::failed(recipe, format!("the recipe's task failed: {e}")),
                std::time::Duration::ZERO,
            ),
        });
    }
    for (mut d, left) in decided {
        if d.entry.error.is_none() {
            if let Some(tag) = d.run.clone() {
                let acted = tokio::time::timeout(
                    left,
                    act(settings, &launch, &mut d, &tag, credentials, listener),
                )
                .await;
                let (started, knows) = match acted {
                    Ok(acted) => acted,
                    Err(_) => {
                        let what = format!("action on {}", tag.0);
                        d.entry.fail(past_deadline(settings.recipe_deadline, &what));
                        (false, ListenerKnows::NotAsked)
                    }
                };
                if report.missed_webhooks_unknown.is_none() {
                    report.missed_webhooks_unknown = match knows {
                        ListenerKnows::NotAsked if matches!(launch, Launch::Inline) => Some(
                            "no listener_url: an inline sweep cannot tell a missed webhook".into(),
                        ),
                        ListenerKnows::Unanswered(e) if matches!(launch, Launch::Inline) => {
                            Some(format!("the listener did not answer: {e}"))
                        }
                        _ => None,
                    };
                }
                if started && d.entry.error.is_none() {
                    report.started += 1;
                }
            }
        }
        if !settings.dry_run {
            d.entry.warm_status = warm_status(settings, &d.recipe);
        }
        if d.entry.error.is_some() || !d.entry.pr_errors.is_empty() {
            report.errors += 1;
            tracing::error!(recipe = %d.entry.recipe, error = d.entry.error.as_deref().unwrap_or(""), "The recipe's sweep failed.");
        }
        report.recipes.push(d.entry);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// Returns who holds `recipe`'s warm data on this host now, or `None` (logged) when the holds
/// cannot be read: the rest of the recipe's entry stands without it.
fn warm_status(settings: &Settings, recipe: &Recipe) -> Option<WarmStatus> {
    match WarmHolds::new(&settings.state_dir, &recipe.name).status() {
        Ok(status) => Some(status),
        Err(e) => {
            tracing::warn!(recipe = %recipe.name, error = %e, "Cannot tell who holds the warm data.");
            None
        }
    }
}

/// Returns why a recipe failed when its deadline passed during `what`. A blocking step still in
/// flight (an inline run) goes on in the background until its own timeouts end it or the sweep
/// exits; the sweep moves on.
fn past_deadline(deadline: std::time::Duration, what: &str) -> String {
    format!(
        "the recipe did not finish within its deadline of {} (recipe_deadline); stopped during its {what}",
        humantime::format_duration(deadline)
    )
}

/// A recipe after the deciding phase.
struct Decided {
    recipe: Recipe,
    entry: RecipeEntry,
    /// The tag to run, when the decision is `run`.
    run: Option<(ReleaseVersion, CommitId)>,
}

impl Decided {
    fn new(recipe: &Recipe) -> Self {
        Self {
            recipe: recipe.clone(),
            entry: RecipeEntry {
                recipe: recipe.name.to_string(),
                ..RecipeEntry::default()
            },
            run: None,
        }
    }

    fn failed(recipe: &Recipe, error: String) -> Self {
        let mut d = Self::new(recipe);
        d.entry.fail(error);
        d
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("a blocking task failed: {e}"))?
}

/// Syncs (or, on a dry run, lists) and decides for one recipe. Never fails: errors are recorded.
async fn decide(settings: &Settings, recipe: &Recipe, credentials: &Credentials) -> Decided {
    let mut d = Decided::new(recipe);
    let fail = |mut d: Decided, error: String| {
        d.entry.fail(error);
        d
    };
    let store = canon_shared::state::open_store_at(
        &settings.state_dir,
        settings.state_repo.as_deref(),
        credentials,
    );
    let canonical = match store.read_canonical(&recipe.name) {
        Ok(c) => c,
        Err(e) => return fail(d, e.to_string()),
    };
    d.entry.canonical = canonical.as_ref().map(|c| c.version.to_string());
    let tags: BTreeMap<String, CommitId> = if settings.dry_run {
        let upstream = credentials.upstream(recipe);
        match blocking(move || mirror::ls_remote(&upstream).map_err(|e| e.to_string())).await {
            // Listing a remote on its own peels every tag, so none is left out here.
            Ok(refs) => refs
                .tags
                .into_iter()
                .filter_map(|(n, t)| Some((n, t.peeled?)))
                .collect(),
            Err(e) => return fail(d, e),
        }
    } else {
        let request = trigger::sync_request(recipe, credentials, &settings.state_dir);
        // A mirror forge that cannot be built is a PR error, reported once the sync stands.
        let prs = mirror_prs(settings, recipe);
        let tidy = prs.as_ref().ok().and_then(Option::as_ref);
        match trigger::sync_and_tidy(request, tidy).await {
            Ok(tidied) => {
                let sync = tidied.sync;
                d.entry.sync = Some(sync.summary());
                d.entry.moved_tags = sync
                    .moved_tags
                    .iter()
                    .map(|m| {
                        let old = m.old_commit.as_deref().unwrap_or_default();
                        let new = m.new_commit.as_deref().unwrap_or_default();
                        format!("{} {old} -> {new}", m.name)
                    })
                    .collect();
                match (prs, tidied.prs) {
                    (Err(e), _) => d.entry.pr_errors.push(format!("mirror forge: {e}")),
                    (Ok(_), Some(closed)) => record_closed_prs(closed, &mut d.entry),
                    (Ok(_), None) => {}
                }
                sync.upstream_tags
            }
            Err(SyncError::Task(e)) => {
                return fail(d, format!("mirror sync: a blocking task failed: {e}"))
            }
            Err(SyncError::Mirror(e)) => return fail(d, format!("mirror sync: {e}")),
        }
    };
    d.entry.mirror_cache_bytes = dir_size(&mirror::cache_dir(&settings.state_dir, &recipe.name));
    let latest = match version::latest(tags.keys().map(String::as_str)) {
        Ok(l) => l,
        Err(conflict) => return fail(d, conflict.to_string()),
    };
    let latest_commit = latest
        .as_ref()
        .and_then(|v| tags.get(&v.to_string()).cloned());
    d.entry.latest = latest.as_ref().map(ToString::to_string);
    d.entry.latest_commit = latest_commit.clone();
    let decision = sweep_decision(
        latest.as_ref().zip(latest_commit.as_ref()),
        canonical.as_ref(),
    );
    match decision {
        SweepDecision::Skip { reason } => {
            d.entry.decision = Some("skip".into());
            d.entry.reason = reason.to_string();
            d.entry.action = "none".into();
        }
        SweepDecision::Run { tag } => {
            d.entry.decision = Some("run".into());
            d.entry.reason = match &canonical {
                None => format!("{tag} is the first release to test (no canonical yet)"),
                Some(c) => format!("{tag} is newer than the canonical {}", c.version),
            };
            if let Some(problem) = disk_problem(settings).await {
                d.entry.decision = Some("skip".into());
                d.entry.reason = problem;
                d.entry.action = "none".into();
            } else {
                // A tag the decision runs is upstream's latest, so its commit is known.
                if let Some(commit) = latest_commit {
                    d.run = Some((tag, commit));
                }
            }
        }
    }
    d
}

/// Returns where the mirror PRs merged upstream are closed after a sync: the mirror's forge (the
/// `mirror_forge` setting, else the forge the mirror's URL names), when it is known and a mirror
/// token is set; `Ok(None)` when it is not.
fn mirror_prs(settings: &Settings, recipe: &Recipe) -> Result<Option<MirrorPrs>, ForgeError> {
    let base = settings
        .mirror_forge
        .as_ref()
        .or(recipe.mirror.forge.as_ref());
    let (Some(base), Some(repo), Some(token)) =
        (base, &recipe.mirror.full_name, &settings.mirror_token)
    else {
        return Ok(None);
    };
    MirrorPrs::on(base, repo.as_str(), token.clone()).map(Some)
}

/// Records in `entry` what closing the mirror PRs merged upstream did.
fn record_closed_prs(closed: Result<CloseReport, MirrorError>, entry: &mut RecipeEntry) {
    match closed {
        Ok(r) => {
            entry.closed_prs = r.closed.iter().map(|c| c.number).collect();
            entry.pr_errors = r
                .failed
                .iter()
                .map(|f| format!("PR #{}: {}", f.number, f.error))
                .collect();
        }
        Err(e) => entry
            .pr_errors
            .push(format!("closing PRs merged upstream: {e}")),
    }
}

/// Gets one tag tested: a Drone build (unless one for the same recipe, tag and commit is already
/// pending, running or passed), or an inline run. Returns true when it started a build or ran
/// the tag.
async fn act(
    settings: &Settings,
    launch: &Launch,
    d: &mut Decided,
    run: &(ReleaseVersion, CommitId),
    credentials: &Credentials,
    listener: Option<&ListenerClient>,
) -> (bool, ListenerKnows) {
    let (tag, commit) = run;
    let knows = match launch {
        Launch::DryRun => ListenerKnows::NotAsked,
        _ => ask_listener(listener, &d.recipe, tag).await,
    };
    let started = match launch {
        Launch::DryRun => {
            d.entry.action = "dry run: would get it tested".into();
            false
        }
        Launch::Drone { client, branch } => {
            let params = BuildParams {
                recipe: d.recipe.name.clone(),
                tag: tag.to_string(),
                commit: commit.clone(),
            };
            match trigger::start_build_once(client, &d.recipe, branch, &params).await {
                Ok(BuildOnce::Found(build)) => {
                    d.entry.action = format!("already build #{} ({})", build.number, build.status);
                    false
                }
                Ok(BuildOnce::Started(build)) => {
                    d.entry.action = format!("started build #{}", build.number);
                    // No earlier build, and no listener job either: the webhook was missed.
                    if !matches!(knows, ListenerKnows::Job) {
                        record_missed(settings, d, tag, commit);
                    }
                    true
                }
                Err(e) => {
                    d.entry.fail(e.to_string());
                    false
                }
            }
        }
        Launch::Inline => {
            // Standalone there are no webhooks to miss; a tag the configured listener never saw
            // was missed.
            if matches!(knows, ListenerKnows::NoJob) {
                record_missed(settings, d, tag, commit);
            }
            let run_settings = inline_settings(settings, &d.recipe, tag, commit, credentials);
            let runner_settings = settings.clone();
            let result = blocking(move || {
                let runner =
                    crate::runners::from_settings(&runner_settings).map_err(|e| e.to_string())?;
                run_tag_mode(&run_settings, runner.as_ref()).map_err(|e| error_chain(&e))
            })
            .await;
            match result {
                Ok(outcome) => {
                    let r = &outcome.report;
                    d.entry.action = if outcome.promoted() {
                        format!("promoted {tag}")
                    } else if r.green {
                        format!("green, not promoted: {}", r.gate.reasons.join("; "))
                    } else {
                        let why = r
                            .problems
                            .first()
                            .cloned()
                            .or_else(|| r.gate.reasons.first().cloned())
                            .unwrap_or_else(|| "red".into());
                        format!("red: {why}")
                    };
                    if !r.green {
                        d.entry.error = Some(format!("the cold run of {tag} was red"));
                    }
                    true
                }
                Err(e) => {
                    d.entry.fail(e);
                    false
                }
            }
        }
    };
    if settings.runner == RunnerKind::Docker && !settings.dry_run {
        d.entry.warm_volume_bytes = warm_bytes(&d.recipe).await;
    }
    (started, knows)
}

/// Builds the in-process tag-mode settings for one recipe and tag.
fn inline_settings(
    settings: &Settings,
    recipe: &Recipe,
    tag: &ReleaseVersion,
    commit: &CommitId,
    credentials: &Credentials,
) -> RunSettings {
    let tested = canon_shared::gate::TestedRef::Tag(tag.to_string());
    RunSettings {
        claimed_commits: vec![crate::settings::ClaimedCommit {
            source: "sweep",
            commit: commit.clone(),
        }],
        quick: false,
        trigger: "sweep".into(),
        // Each inline run's own report goes next to the sweep report.
        report: Some(
            settings
                .report_path("sweep-report.json")
                .parent()
                .unwrap_or(&settings.workspace)
                .join(format!("canon-report-{}.json", recipe.name)),
        ),
        ..RunSettings::new(settings, recipe.clone(), tested, credentials)
    }
}

/// Counts a missed webhook in the report and appends it to the state dir's record.
fn record_missed(settings: &Settings, d: &mut Decided, tag: &ReleaseVersion, commit: &CommitId) {
    d.entry.missed_webhooks += 1;
    if settings.dry_run {
        return;
    }
    let missed = MissedWebhook {
        at: state::now(),
        recipe: d.recipe.name.clone(),
        tag: tag.to_string(),
        commit: commit.clone(),
    };
    if let Err(e) = StateDir::new(&settings.state_dir).record_missed_webhook(&missed) {
        tracing::warn!(error = %e, "Cannot record the missed webhook.");
    }
}
