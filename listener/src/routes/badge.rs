//! `GET /badge/<recipe>.svg`: the recipe's canonical as a badge for its README, and the facts the
//! badge and the status page share.
//!
//! Public like `/healthz` (a README's image carries no token): it shows only what the recipe's
//! published tags and its canonical already tell. The colour is [`canon_shared::badge`]'s
//! standing, decided from the canonical, the tail of the recipe's history and its newest jobs in
//! the journal. The answer has a strong `ETag` (a digest of the SVG) and a short `Cache-Control`;
//! a request whose `If-None-Match` holds it gets a 304 without a body.

use std::sync::Arc;

use canon_shared::badge::{self, RecipeStatus, TagFact, TagOutcome};
use canon_shared::recipe::{Recipe, RecipeName};
use canon_shared::state::CanonicalRecord;
use canon_shared::version::ReleaseVersion;
use sha2::{Digest, Sha256};
use warp::http::{header, Response, StatusCode};

use crate::journal::JobState;
use crate::routes::{reply_json, AppState, Reply};

/// How many of a recipe's newest jobs the badge and the status page read.
pub const RECIPE_JOBS: u32 = 200;

/// How much of the end of a recipe's history they read.
pub const HISTORY_TAIL: u64 = 64 * 1024;

/// What the badge sends as `Cache-Control`: caches may keep it a minute, then ask again.
pub const CACHE_CONTROL: &str = "max-age=60";

/// The colour of a badge that cannot say anything about the canonical.
const ERROR_COLOUR: &str = "#e05d44";

/// What the listener knows of one recipe.
#[derive(Debug)]
pub struct Known {
    /// The canonical record, when there is one.
    pub canonical: Option<CanonicalRecord>,
    /// Where it stands.
    pub status: RecipeStatus,
    /// The greatest release tag among the recipe's newest jobs, and that job's state.
    pub latest: Option<(ReleaseVersion, JobState)>,
}

/// Why a recipe's facts could not be read. The text names a path or the journal, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// The canonical record or the history is unreadable.
    #[error(transparent)]
    State(#[from] canon_shared::state::StateError),
    /// The journal is unreadable.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

/// Returns what a job's state says of its tag.
pub fn outcome(state: JobState) -> TagOutcome {
    match state {
        // Done: a build was started; its decision lands in the history.
        JobState::Queued | JobState::Running | JobState::Retrying | JobState::Done => {
            TagOutcome::Testing
        }
        JobState::Failed => TagOutcome::Failed,
        JobState::Skipped => TagOutcome::Settled,
    }
}

/// Reads the canonical, the history's tail and the newest jobs of `recipe`, and decides.
pub async fn facts(state: &AppState, recipe: &RecipeName) -> Result<Known, FactsError> {
    let (canonical, history) = match state.state_repo() {
        None => (
            state.state.read_canonical(recipe)?,
            state.state.read_history_tail(recipe, HISTORY_TAIL)?,
        ),
        // A state repository is read over the network: off the async runtime.
        Some(store) => {
            let recipe = recipe.clone();
            tokio::task::spawn_blocking(move || {
                Ok::<_, canon_shared::state::StateError>((
                    store.read_canonical(&recipe)?,
                    store.read_history(&recipe)?,
                ))
            })
            .await
            .map_err(|e| canon_shared::state::StateError::Repository {
                url: "(state repository)".into(),
                message: format!("the read failed: {e}"),
            })??
        }
    };
    let jobs = state
        .journal
        .recipe_tags(recipe.as_str().to_string(), RECIPE_JOBS)
        .await?;
    let mut tags = badge::history_facts(&history);
    let mut latest: Option<(ReleaseVersion, JobState)> = None;
    for (tag, job) in jobs {
        let Ok(version) = tag.parse::<ReleaseVersion>() else {
            continue;
        };
        if latest.as_ref().is_none_or(|(l, _)| version > *l) {
            latest = Some((version.clone(), job));
        }
        tags.push(TagFact {
            version,
            outcome: outcome(job),
        });
    }
    let status = RecipeStatus::decide(canonical.as_ref(), &tags);
    Ok(Known {
        canonical,
        status,
        latest,
    })
}

/// Returns the strong entity tag of `body`: a quoted SHA-256 prefix.
pub fn etag(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Returns true when `if_none_match` (the header's value) holds `etag` or `*`. The comparison is
/// the weak one RFC 9110 (13.1.2) asks for, so `W/"x"` matches `"x"`.
pub fn none_match(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(header) = if_none_match else {
        return false;
    };
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// Returns an SVG answer with the caching headers, or a 304 when the client has it already.
fn svg(status: StatusCode, body: String, if_none_match: Option<&str>) -> Reply {
    let tag = etag(&body);
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, badge::CONTENT_TYPE)
        .header(header::CACHE_CONTROL, CACHE_CONTROL)
        .header(header::ETAG, &tag);
    let response = if status == StatusCode::OK && none_match(if_none_match, &tag) {
        builder.status(StatusCode::NOT_MODIFIED).body(String::new())
    } else {
        builder.status(status).body(body)
    };
    match response {
        Ok(r) => Box::new(r),
        // Only a header value that is not valid could fail, and every value here is ASCII.
        Err(_) => Box::new(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// `GET /badge/<recipe>.svg`.
pub async fn handle(
    file: String,
    if_none_match: Option<String>,
    state: Arc<AppState>,
) -> Result<Reply, warp::Rejection> {
    let Some(name) = file.strip_suffix(".svg") else {
        return Ok(reply_json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "a badge is at /badge/<recipe>.svg" }),
        ));
    };
    let name = match RecipeName::parse(name) {
        Ok(name) => name,
        Err(e) => {
            return Ok(reply_json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": e.to_string() }),
            ))
        }
    };
    let Some(recipe) = state.enrollment.get(&name) else {
        return Ok(svg(
            StatusCode::NOT_FOUND,
            badge::render_text(badge::LABEL, "unknown recipe", ERROR_COLOUR),
            None,
        ));
    };
    let Recipe { name, .. } = recipe;
    match facts(&state, name).await {
        Ok(known) => Ok(svg(
            StatusCode::OK,
            badge::render(&known.status),
            if_none_match.as_deref(),
        )),
        Err(e) => {
            tracing::error!(recipe = %name, error = %e, "Cannot read the facts for the badge.");
            Ok(svg(
                StatusCode::INTERNAL_SERVER_ERROR,
                badge::render_text(badge::LABEL, "unavailable", ERROR_COLOUR),
                None,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_holds_the_tag_or_a_star() {
        let tag = etag("<svg/>");
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34);
        assert_ne!(tag, etag("<svg></svg>"), "another body, another tag");
        // (what it shows, header, matches)
        let cases: &[(&str, Option<String>, bool)] = &[
            ("no header", None, false),
            ("the tag", Some(tag.clone()), true),
            ("the tag among others", Some(format!("\"x\", {tag}")), true),
            ("the tag marked weak", Some(format!("W/{tag}")), true),
            ("any tag", Some("*".into()), true),
            ("another tag", Some("\"0123\"".into()), false),
            (
                "the tag unquoted",
                Some(tag.trim_matches('"').to_string()),
                false,
            ),
        ];
        for (says, header, want) in cases {
            assert_eq!(none_match(header.as_deref(), &tag), *want, "{says}");
        }
    }

    #[test]
    fn a_job_s_state_says_what_became_of_its_tag() {
        for (state, want) in [
            (JobState::Queued, TagOutcome::Testing),
            (JobState::Retrying, TagOutcome::Testing),
            (JobState::Running, TagOutcome::Testing),
            (JobState::Done, TagOutcome::Testing),
            (JobState::Skipped, TagOutcome::Settled),
            (JobState::Failed, TagOutcome::Failed),
        ] {
            assert_eq!(outcome(state), want, "{state}");
        }
    }
}
