//! Read-only endpoints: `/healthz`, `/readyz`, `/metrics`, `/api/jobs`, `/api/deliveries`, and
//! `/api/recipes/{recipe}/tags/{tag}/job`, whose answer is the contract in
//! [`canon_shared::listener_api`].

use std::sync::Arc;

use canon_shared::listener_api::JobForTag;
use canon_shared::recipe::RecipeName;
use percent_encoding::percent_decode_str;
use serde_json::json;
use warp::http::StatusCode;

use crate::routes::{reply_json, AppState, Reply};

/// `GET /healthz`: the process answers.
pub async fn healthz(_state: Arc<AppState>) -> Result<Reply, warp::Rejection> {
    Ok(reply_json(StatusCode::OK, &json!({ "status": "alive" })))
}

/// `GET /readyz`: the journal takes writes and the enrollment is loaded.
pub async fn readyz(state: Arc<AppState>) -> Result<Reply, warp::Rejection> {
    let journal = state.journal.is_healthy() && state.journal.flush().await.is_ok();
    let recipes = state.enrollment.recipes.len();
    let ready = journal && recipes > 0;
    Ok(reply_json(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &json!({ "ready": ready, "journal_writable": journal, "recipes_enrolled": recipes }),
    ))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(state: Arc<AppState>) -> Result<Reply, warp::Rejection> {
    let jobs = state.journal.job_counts().await.unwrap_or_default();
    let now = time::OffsetDateTime::now_utc();
    let last: Vec<(String, f64)> = state
        .journal
        .last_event_per_recipe()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(recipe, at)| {
            let t =
                time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                    .ok()?;
            Some((recipe, (now - t).as_seconds_f64().max(0.0)))
        })
        .collect();
    // The weekly sweep records the tags it had to start that no webhook announced.
    let missed: Vec<(String, u64)> = state.state.missed_webhook_counts().into_iter().collect();
    let body = state.metrics.render(&jobs, &last, &missed);
    Ok(Box::new(warp::reply::with_header(
        body,
        "content-type",
        "text/plain; version=0.0.4; charset=utf-8",
    )))
}

/// `GET /api/jobs`: every job (one per forge, repo and tag), newest first.
pub async fn jobs(state: Arc<AppState>) -> Result<Reply, warp::Rejection> {
    match state.journal.jobs().await {
        Ok(jobs) => Ok(reply_json(StatusCode::OK, &jobs)),
        Err(e) => {
            tracing::error!(error = %e, "Cannot read jobs.");
            Ok(reply_json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": "journal unavailable" }),
            ))
        }
    }
}

/// `GET /api/deliveries`: the newest 500 journaled deliveries and the rejected ones kept in
/// memory, newest first.
pub async fn deliveries(state: Arc<AppState>) -> Result<Reply, warp::Rejection> {
    match state.journal.deliveries(500).await {
        Ok(mut rows) => {
            rows.extend(state.rejected());
            // RFC 3339 UTC strings of one format sort by time.
            rows.sort_by(|a, b| b.received_at.cmp(&a.received_at));
            Ok(reply_json(StatusCode::OK, &rows))
        }
        Err(e) => {
            tracing::error!(error = %e, "Cannot read deliveries.");
            Ok(reply_json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": "journal unavailable" }),
            ))
        }
    }
}

/// `GET /api/recipes/{recipe}/tags/{tag}/job`: the newest job for the recipe at the tag as a
/// [`JobForTag`]: 200 with the job, 404 with `{"job": null}` when no webhook announced the tag.
///
/// The segments arrive percent-encoded (a tag's `+` may travel as `%2B`); a recipe that is not a
/// valid name is a 400.
pub async fn job_for_tag(
    recipe: String,
    tag: String,
    state: Arc<AppState>,
) -> Result<Reply, warp::Rejection> {
    let bad = |message: String| {
        Ok(reply_json(
            StatusCode::BAD_REQUEST,
            &json!({ "error": message }),
        ))
    };
    let (Ok(recipe), Ok(tag)) = (
        percent_decode_str(&recipe).decode_utf8(),
        percent_decode_str(&tag).decode_utf8(),
    ) else {
        return bad("the path is not UTF-8 once percent-decoded".into());
    };
    let recipe = match RecipeName::parse(&recipe) {
        Ok(r) => r,
        Err(e) => return bad(e.to_string()),
    };
    let unavailable = || {
        Ok(reply_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "error": "journal unavailable" }),
        ))
    };
    match state.journal.job_for(&recipe, &tag).await {
        Ok(Some(job)) => match job.summary() {
            Ok(summary) => Ok(reply_json(
                StatusCode::OK,
                &JobForTag { job: Some(summary) },
            )),
            Err(e) => {
                tracing::error!(job = job.id, error = %e, "A stored job names an invalid recipe.");
                unavailable()
            }
        },
        Ok(None) => Ok(reply_json(StatusCode::NOT_FOUND, &JobForTag { job: None })),
        Err(e) => {
            tracing::error!(recipe = %recipe, tag = %tag, error = %e, "Cannot read the job for a tag.");
            unavailable()
        }
    }
}
