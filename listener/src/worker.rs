//! The worker: turns journaled tag jobs into mirror syncs and Drone builds.
//!
//! [`process_one`] is one attempt at one job, a plain async function that production loops over
//! ([`run`]) and tests call directly. The payload is only a hint: the attempt resolves the tag's
//! commit at the forge (or by listing the upstream when no forge token is set), syncs the mirror,
//! skips tags the gate says not to build (`canon_shared::gate::build_decision`: not newer than the
//! canonical, or the recipe is pinned), and starts the Drone build unless one with
//! the same recipe, tag and commit is already pending, running or green. That last check is what
//! keeps a tag from being built twice when the process died between starting a build and
//! recording it.
//!
//! [`run`] runs at most `workers` jobs at once and at most one per recipe, oldest first, and on
//! each pass reads no more jobs than it has free workers (`Journal::runnable`); failures
//! come back after an exponential delay with jitter, up to the attempt limit. Each claim leases
//! its job for that same delay, and a job that has used every attempt without a result is failed
//! instead of claimed (see `journal::queries`): a job whose attempt kills the process does not
//! crash-loop it.

use canon_shared::secret::userinfo_masked_in;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canon_shared::commit::CommitId;
use canon_shared::drone::{BuildParams, DroneClient, DroneError};
use canon_shared::forge::Forge;
use canon_shared::gate::{build_decision, BuildDecision};
use canon_shared::mirror::{self, CloseReport, Credentials, MirrorError};
use canon_shared::recipe::{Enrollment, Recipe};
use canon_shared::state::{StateDir, StateStore};
use canon_shared::trigger::{self, BuildOnce, MirrorPrs, StartError, SyncError};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::clock::{now_ms, now_text};
use crate::config::RetryPolicy;
use crate::journal::{Claim, ClaimTerms, Job, JobState, JobUpdate, Journal};
use crate::metrics::Metrics;

/// Everything an attempt needs.
pub struct WorkerCtx {
    /// The enrolled recipes.
    pub enrollment: Arc<Enrollment>,
    /// The state directory (mirror caches).
    pub state: StateDir,
    /// Where the canonical records are: the state dir, or the git state repository.
    pub records: Arc<dyn StateStore>,
    /// The upstream forge, when a token is configured (tag resolution).
    pub forge: Option<Arc<dyn Forge>>,
    /// The upstream forge's base URL (`CANON_FORGE_URL`): only a recipe whose upstream is on
    /// its origin has its tags resolved at [`WorkerCtx::forge`].
    pub forge_base: Option<String>,
    /// The mirror's forge, when its URL and a mirror token are configured (closing PRs merged
    /// upstream).
    pub mirror_forge: Option<Arc<dyn Forge>>,
    /// Tokens and SSH settings every git remote is built from.
    pub credentials: Credentials,
    /// The Drone client.
    pub drone: DroneClient,
    /// The branch Drone builds run on.
    pub drone_branch: String,
    /// The retry policy.
    pub retry: RetryPolicy,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// Returns the delay before attempt `attempts + 1`: `base * 2^(attempts-1)`, capped at `max`,
/// with "equal jitter" (uniform in the upper half) so retries of many jobs spread out.
pub fn backoff(policy: &RetryPolicy, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let full = policy.base.saturating_mul(1u32 << exp).min(policy.max);
    let half = full / 2;
    let jitter_ms = rand::random_range(0..=half.as_millis().max(1) as u64);
    half + Duration::from_millis(jitter_ms)
}

/// Why an attempt did not start a build.
enum Failure {
    /// Worth retrying.
    Transient(String),
    /// Retrying cannot help (no pipeline matched).
    Permanent(String),
}

/// Runs one attempt at `job` (already claimed) and returns what to store.
pub async fn process_one(ctx: &WorkerCtx, job: &Job) -> JobUpdate {
    let mut commit_seen: Option<CommitId> = None;
    let deadline = ctx.retry.attempt_deadline;
    let result = match tokio::time::timeout(deadline, attempt(ctx, job, &mut commit_seen)).await {
        Ok(r) => r,
        // A hung forge, git server or Drone must not hold the recipe: the attempt is dropped and
        // retried. (A blocking git call still in flight ends at libgit2's own read timeout.)
        Err(_) => Err(Failure::Transient(format!(
            "the attempt did not finish within {}",
            humantime::format_duration(deadline)
        ))),
    };
    // A job's error is shown on the status page and the API and logged: a URL a server or a
    // library quoted in it never carries its user info there.
    let result = result.map_err(|failure| match failure {
        Failure::Permanent(e) => Failure::Permanent(userinfo_masked_in(&e)),
        Failure::Transient(e) => Failure::Transient(userinfo_masked_in(&e)),
    });
    match result {
        Ok(update) => update,
        Err(Failure::Permanent(error)) => JobUpdate::Failed {
            commit: commit_seen,
            error,
        },
        Err(Failure::Transient(error)) if job.attempts >= ctx.retry.max_attempts => {
            JobUpdate::Failed {
                commit: commit_seen,
                error: format!("{error} (gave up after {} attempts)", job.attempts),
            }
        }
        Err(Failure::Transient(error)) => JobUpdate::Retry {
            commit: commit_seen,
            error,
            next_attempt_ms: now_ms() + backoff(&ctx.retry, job.attempts).as_millis() as i64,
        },
    }
}

async fn attempt(
    ctx: &WorkerCtx,
    job: &Job,
    commit_seen: &mut Option<CommitId>,
) -> Result<JobUpdate, Failure> {
    // The journal hands out only jobs whose recipe and tag parse (`Claim::Unreadable` ends the
    // others).
    let (name, version) = (job.recipe.clone(), job.tag.clone());
    let Some(recipe) = ctx.enrollment.get(&name) else {
        return Err(Failure::Permanent(format!(
            "recipe {name} is no longer enrolled"
        )));
    };
    let tag = version.to_string();
    let commit = resolve_commit(ctx, recipe, &tag).await?;
    *commit_seen = Some(commit.clone());
    let request = trigger::sync_request(recipe, &ctx.credentials, ctx.state.root());
    let prs = match (&ctx.mirror_forge, &recipe.mirror.full_name) {
        (Some(forge), Some(repo)) => Some(MirrorPrs::new(forge.clone(), repo.clone())),
        _ => None,
    };
    let tidied = trigger::sync_and_tidy(request, prs.as_ref())
        .await
        .map_err(|e| match e {
            SyncError::Task(e) => Failure::Transient(format!("mirror sync task failed: {e}")),
            SyncError::Mirror(e) => Failure::Transient(format!("mirror sync: {e}")),
        })?;
    ctx.metrics.sync_latency.observe(tidied.synced_in);
    let report = tidied.sync;
    tracing::info!(recipe = %name, tag = %job.tag, summary = %report.summary(), "Mirror synced.");
    if let Some(closed) = tidied.prs {
        log_merged_prs(recipe, closed);
    }
    match report.upstream_tags.get(&tag) {
        Some(c) if *c == commit => {}
        Some(c) => {
            return Err(Failure::Transient(format!(
                "tag {} moved while syncing (resolved {commit}, synced {c})",
                job.tag
            )))
        }
        None => {
            return Err(Failure::Transient(format!(
                "tag {} is no longer upstream",
                job.tag
            )))
        }
    }

    let records = ctx.records.clone();
    let recipe_name = name.clone();
    let canonical = tokio::task::spawn_blocking(move || records.read_canonical(&recipe_name))
        .await
        .map_err(|e| Failure::Transient(format!("reading the canonical failed: {e}")))?
        .map_err(|e| Failure::Transient(e.to_string()))?;
    if let BuildDecision::Skip { reason } = build_decision(&version, &commit, canonical.as_ref()) {
        return Ok(JobUpdate::Skipped {
            commit: Some(commit),
            reason: reason.to_string(),
        });
    }

    let params = BuildParams {
        recipe: name.clone(),
        tag: tag.clone(),
        commit: commit.clone(),
    };
    let started = Instant::now();
    let (build, note) =
        match trigger::start_build_once(&ctx.drone, recipe, &ctx.drone_branch, &params).await {
            Ok(BuildOnce::Found(b)) => (
                b,
                Some("build already started for this commit; not started again".to_string()),
            ),
            Ok(BuildOnce::Started(b)) => (b, None),
            // A recipe pinned to a Drone repository that is not `owner/name`, or no pipeline that
            // matches: retrying cannot help.
            Err(StartError::DroneRepo(e)) => return Err(Failure::Permanent(e.to_string())),
            Err(StartError::Drone(e @ DroneError::NoPipeline { .. })) => {
                return Err(Failure::Permanent(e.to_string()))
            }
            Err(StartError::Drone(e)) => return Err(Failure::Transient(e.to_string())),
        };
    ctx.metrics.trigger_latency.observe(started.elapsed());
    tracing::info!(recipe = %name, tag = %job.tag, commit = %commit, build = build.number, adopted = note.is_some(), "Drone build started.");
    Ok(JobUpdate::Done {
        commit,
        build: build.number,
        link: build.link,
        note,
    })
}

/// Logs what closing the mirror PRs merged upstream did. A failure is logged, not fatal: the
/// build of a release tag must not wait on PR housekeeping, and the next sync tries again.
fn log_merged_prs(recipe: &Recipe, closed: Result<CloseReport, MirrorError>) {
    match closed {
        Ok(r) => {
            let closed: Vec<u64> = r.closed.iter().map(|c| c.number).collect();
            tracing::info!(recipe = %recipe.name, closed = ?closed, left_open = r.left_open.len(), failed = r.failed.len(), "Mirror PRs merged upstream handled.");
        }
        Err(e) => {
            let error = userinfo_masked_in(&e.to_string());
            tracing::warn!(recipe = %recipe.name, error = %error, "Cannot close mirror PRs merged upstream.")
        }
    }
}

/// Resolves the tag's commit at the recipe's own upstream: through the forge's API when the
/// upstream is on the configured forge's origin, else by listing the upstream (anonymously
/// unless a token is bound to its host). A same-named repository on the configured forge never
/// decides for a recipe that lives elsewhere.
async fn resolve_commit(ctx: &WorkerCtx, recipe: &Recipe, tag: &str) -> Result<CommitId, Failure> {
    let on_forge = ctx
        .forge_base
        .as_deref()
        .is_some_and(|base| mirror::same_origin(base, &recipe.upstream.url));
    if let (true, Some(forge), Some(full_name)) = (on_forge, &ctx.forge, &recipe.upstream.full_name)
    {
        return match forge.resolve_tag(full_name, tag).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(Failure::Transient(format!(
                "tag {tag} not found at the forge for {full_name}"
            ))),
            Err(e) => Err(Failure::Transient(format!("resolving {tag}: {e}"))),
        };
    }
    let upstream = ctx.credentials.upstream(recipe);
    let refs = tokio::task::spawn_blocking(move || mirror::ls_remote(&upstream))
        .await
        .map_err(|e| Failure::Transient(format!("listing upstream failed: {e}")))?
        .map_err(|e| Failure::Transient(e.to_string()))?;
    match refs.tags.get(tag) {
        // An upstream listing peels every tag; `None` is only possible on a mirror's side.
        Some(t) => t.peeled.clone().ok_or_else(|| {
            let e = canon_shared::commit::InvalidCommitId::Empty;
            Failure::Transient(format!("tag {tag} upstream: {e}"))
        }),
        None => Err(Failure::Transient(format!(
            "tag {tag} not found upstream ({})",
            recipe.upstream.url
        ))),
    }
}

/// Runs jobs until `shutdown` turns true, then waits up to `grace` for attempts in flight.
///
/// Attempts still running after `grace` are abandoned; their jobs stay `running` in the journal
/// and run again once their lease is over, at the next start (the Drone lookup prevents a second
/// build).
pub async fn run(
    ctx: Arc<WorkerCtx>,
    journal: Journal,
    workers: usize,
    notify: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tasks = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = now_ms();
        let mut wait = Duration::from_secs(5);
        // Read only as many jobs as there are free workers, none of a recipe already held.
        let held: Vec<String> = {
            let set = busy.lock().unwrap_or_else(|p| p.into_inner());
            set.iter().cloned().collect()
        };
        let free = workers.saturating_sub(held.len());
        match journal.runnable(now, free, held).await {
            Ok(jobs) => {
                for job in jobs {
                    if !busy
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(job.recipe.clone())
                    {
                        continue;
                    }
                    let (ctx, journal, busy, notify) =
                        (ctx.clone(), journal.clone(), busy.clone(), notify.clone());
                    tasks.spawn(async move {
                        run_job(&ctx, &journal, job.id).await;
                        busy.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&job.recipe);
                        notify.notify_one();
                    });
                }
            }
            Err(e) => tracing::error!(error = %e, "Cannot read runnable jobs."),
        }
        if let Ok(Some(due)) = journal.next_due_ms().await {
            if due > now {
                wait = wait.min(Duration::from_millis((due - now) as u64));
            } else {
                // Due now but not started: its recipe is busy or all workers are; a finishing
                // attempt notifies.
            }
        }
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
    let in_flight = tasks.len();
    if in_flight > 0 {
        tracing::info!(in_flight, "Waiting for attempts in flight before exiting.");
    }
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "Attempts still running at shutdown were stopped; their jobs run again at the next start."
        );
        tasks.abort_all();
    }
}

/// Claims, runs and records one attempt at job `id`.
pub async fn run_job(ctx: &WorkerCtx, journal: &Journal, id: i64) {
    let retry = ctx.retry;
    let terms = ClaimTerms {
        now: now_text(),
        now_ms: now_ms(),
        max_attempts: retry.max_attempts,
        // The lease is the delay a failed attempt would wait: a job whose attempt stopped the
        // process comes back no sooner than a failing one, later each time.
        lease: move |attempt| backoff(&retry, attempt),
    };
    let job = match journal.claim(id, terms).await {
        Ok(Claim::Started(job)) => job,
        Ok(Claim::NotRunnable) => return,
        Ok(Claim::Unreadable {
            recipe,
            tag,
            state,
            reason,
        }) => {
            // Ended as its attempt would have ended it.
            ctx.metrics.job_attempts.fetch_add(1, Ordering::Relaxed);
            tracing::info!(job = id, recipe = %recipe, tag = %tag, "Job attempt started.");
            if state == JobState::Failed {
                ctx.metrics.job_failures.fetch_add(1, Ordering::Relaxed);
                ctx.metrics.jobs_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(job = id, recipe = %recipe, tag = %tag, error = %reason, "Job failed for good.");
            } else {
                tracing::info!(job = id, recipe = %recipe, tag = %tag, reason = %reason, "Job skipped.");
            }
            return;
        }
        Ok(Claim::GaveUp(job)) => {
            ctx.metrics.jobs_failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(job = id, recipe = %job.recipe, tag = %job.tag, attempts = job.attempts, error = job.error.as_deref().unwrap_or_default(), "Job failed for good.");
            return;
        }
        Err(e) => {
            tracing::error!(job = id, error = %e, "Cannot claim job.");
            return;
        }
    };
    ctx.metrics.job_attempts.fetch_add(1, Ordering::Relaxed);
    tracing::info!(job = id, recipe = %job.recipe, tag = %job.tag, attempt = job.attempts, "Job attempt started.");
    let update = process_one(ctx, &job).await;
    match &update {
        JobUpdate::Retry {
            error,
            next_attempt_ms,
            ..
        } => {
            ctx.metrics.job_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(job = id, recipe = %job.recipe, tag = %job.tag, error = %error, retry_in_ms = next_attempt_ms - now_ms(), "Job attempt failed; it will be retried.");
        }
        JobUpdate::Failed { error, .. } => {
            ctx.metrics.job_failures.fetch_add(1, Ordering::Relaxed);
            ctx.metrics.jobs_failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(job = id, recipe = %job.recipe, tag = %job.tag, error = %error, "Job failed for good.");
        }
        JobUpdate::Skipped { reason, .. } => {
            tracing::info!(job = id, recipe = %job.recipe, tag = %job.tag, reason = %reason, "Job skipped.");
        }
        JobUpdate::Done { .. } => {}
    }
    if let Err(e) = journal.finish(id, update, now_text()).await {
        tracing::error!(job = id, error = %e, "Cannot record the job's result; it runs again.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
            attempt_deadline: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let d1 = backoff(&p, 1);
            assert!(
                d1 >= Duration::from_secs(5) && d1 <= Duration::from_secs(10),
                "{d1:?}"
            );
            let d3 = backoff(&p, 3);
            assert!(
                d3 >= Duration::from_secs(20) && d3 <= Duration::from_secs(40),
                "{d3:?}"
            );
            let d9 = backoff(&p, 9);
            assert!(
                d9 >= Duration::from_secs(30) && d9 <= Duration::from_secs(60),
                "{d9:?}"
            );
        }
    }
}
