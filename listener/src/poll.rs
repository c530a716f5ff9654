//! Polling: new release tags of upstreams that send no webhooks.
//!
//! A Co-op Cloud operator rarely administers the upstream repositories, so many recipes never
//! send a webhook. Every `CANON_POLL_INTERVAL` the listener lists the refs of each enrolled
//! upstream that had no webhook delivery within a week (`routes::tag_sources`), over the git
//! protocol (one ref listing, as `git ls-remote`: no forge API, and a token only where one is
//! configured for that host, see `canon_shared::mirror::remote`). When the latest release tag there is newer than the
//! canonical (or there is none yet) and the journal has no job for it, it is journaled as a
//! delivery of event [`POLL_EVENT`]: from there it is a job like a webhook's, on the same worker
//! path, and a webhook for the same tag folds into that job (and the reverse).
//!
//! Only the latest release is journaled: the gate promotes nothing older than the newest, so an
//! older tag found by a poll would be built only to be refused.

use std::sync::Arc;
use std::time::Duration;

use canon_shared::forge::ForgeKind;
use canon_shared::mirror::{self, Credentials};
use canon_shared::recipe::{Recipe, RecipeName};
use canon_shared::version::{self, Precedence, ReleaseVersion};
use tokio::sync::watch;

use crate::clock::now_text;
use crate::journal::{Intake, IntakeFact, POLL_EVENT};
use crate::routes::tag_sources::{tag_sources, TagSource};
use crate::routes::{badge, AppState};

/// What one poll of one recipe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// A release tag was journaled (the job's id).
    Journaled(ReleaseVersion, Option<i64>),
    /// Nothing new: no release, the latest is not newer than the canonical, or it has a job.
    NothingNew,
    /// The listing or the journal failed (the reason, without credentials).
    Failed(String),
}

/// Polls one recipe: lists its upstream's refs and journals the latest release tag when it is
/// new.
pub async fn poll_recipe(
    state: &AppState,
    credentials: &Credentials,
    recipe: &Recipe,
) -> PollOutcome {
    let remote = credentials.upstream(recipe);
    let listed = tokio::task::spawn_blocking(move || mirror::ls_remote(&remote)).await;
    let refs = match listed {
        Ok(Ok(refs)) => refs,
        // The error shows the URL without user info and scrubbed of the token.
        Ok(Err(e)) => return PollOutcome::Failed(e.to_string()),
        Err(e) => return PollOutcome::Failed(format!("the listing stopped: {e}")),
    };
    let latest = match version::latest(refs.tags.keys().map(String::as_str)) {
        Ok(Some(v)) => v,
        Ok(None) => return PollOutcome::NothingNew,
        Err(e) => return PollOutcome::Failed(e.to_string()),
    };
    let tag = latest.to_string();
    match state.journal.job_for(&recipe.name, &tag).await {
        Ok(Some(_)) => return PollOutcome::NothingNew,
        Ok(None) => {}
        Err(e) => return PollOutcome::Failed(e.to_string()),
    }
    match badge::facts(state, &recipe.name).await {
        Ok(known) => {
            if let Some(c) = &known.canonical {
                if latest.precedence(&c.version) != Precedence::Newer {
                    return PollOutcome::NothingNew;
                }
            }
        }
        Err(e) => return PollOutcome::Failed(e.to_string()),
    }
    let commit_hint = refs.tags.get(&tag).and_then(|t| t.peeled.clone());
    let forge = recipe
        .upstream
        .forge
        .as_deref()
        .map_or(ForgeKind::Gitea, ForgeKind::guess);
    let intake =
        Intake {
            forge,
            delivery: format!("poll:{}:{tag}", recipe.name),
            event: POLL_EVENT.to_string(),
            fact: IntakeFact::NewTag {
                repo: recipe.upstream.full_name.clone().unwrap_or_else(|| {
                    canon_shared::secret::without_userinfo(&recipe.upstream.url)
                }),
                recipe: recipe.name.clone(),
                tag: latest.clone(),
                // The ref value a webhook sends may be the tag object or the commit; leaving it to the
                // webhook keeps a tag seen both ways from reading as moved.
                ref_sha: None,
                commit_hint,
            },
            received_at: now_text(),
        };
    match state.journal.intake(intake).await {
        Ok(result) => {
            state.metrics.delivery(result.outcome.as_str());
            state.notify.notify_one();
            PollOutcome::Journaled(latest, result.job)
        }
        Err(e) => {
            state.metrics.delivery("error");
            PollOutcome::Failed(e.to_string())
        }
    }
}

/// Polls every enrolled recipe that webhooks do not feed, one after the other (one connection at
/// a time is plenty for a poll every few minutes), and returns what each poll found.
pub async fn poll_once(
    state: &AppState,
    credentials: &Credentials,
) -> Vec<(RecipeName, PollOutcome)> {
    let mut out = Vec::new();
    for (name, source) in tag_sources(state, true).await {
        if source != TagSource::Polling {
            continue;
        }
        let Some(recipe) = state.enrollment.get(&name) else {
            continue;
        };
        let outcome = poll_recipe(state, credentials, recipe).await;
        match &outcome {
            PollOutcome::Journaled(tag, job) => {
                tracing::info!(recipe = %name, tag = %tag, job = ?job, "A poll found a new release tag.")
            }
            PollOutcome::NothingNew => {}
            PollOutcome::Failed(error) => {
                tracing::warn!(recipe = %name, error = %error, "Cannot poll the upstream.")
            }
        }
        out.push((name, outcome));
    }
    out
}

/// Polls every `interval` until `shutdown` says stop; the first poll runs one interval after the
/// start (a restart storm does not become a listing storm).
pub async fn run(
    state: Arc<AppState>,
    credentials: Credentials,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    if interval.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = poll_once(&state, &credentials) => {}
            _ = shutdown.changed() => return,
        }
    }
}
