//! Read-only endpoints: `/healthz`, `/readyz`, `/metrics`, `/api/jobs`, `/api/deliveries`, and
//! `/api/recipes/{recipe}/tags/{tag}/job`, whose answer is the contract in
//! [`canon_shared::listener_api`].
//!
//! The two lists are paginated (`?limit=`, default 100, at most 500; `?before=` the cursor), newest
//! first, and stay JSON arrays: the next page's cursor travels in the `Link` and `X-Next-Cursor`
//! headers.

use std::collections::HashMap;
use std::sync::Arc;

use canon_shared::listener_api::JobForTag;
use canon_shared::recipe::RecipeName;
use percent_encoding::percent_decode_str;
use serde_json::json;
use warp::http::StatusCode;

use crate::journal::{DeliveryRow, MAX_PAGE};
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
    let mut body = state.metrics.render(&jobs, &last, &missed);
    state.sweeps().get(state.state.root()).render(&mut body);
    super::sweeps::render_behind(&mut body, &super::sweeps::behind_seconds(&state).await);
    Ok(Box::new(warp::reply::with_header(
        body,
        "content-type",
        "text/plain; version=0.0.4; charset=utf-8",
    )))
}

/// The rows a page of `/api/jobs` or `/api/deliveries` holds unless `?limit=` says otherwise.
pub const DEFAULT_PAGE: u32 = 100;

/// What a paginated request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    /// Rows wanted, 1 to [`MAX_PAGE`].
    pub limit: u32,
    /// The cursor: rows older than it (`None`: from the newest).
    pub before: Option<i64>,
}

/// Reads `?limit=` and `?before=`; the error is the 400's message.
pub fn page_query(query: &HashMap<String, String>) -> Result<PageQuery, String> {
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(format!("limit must be a whole number from 1 to {MAX_PAGE}")),
        },
    };
    let before = match query.get("before") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err("before must be the cursor a previous page gave (X-Next-Cursor)".into())
            }
        },
    };
    Ok(PageQuery { limit, before })
}

/// Returns `rows` as a JSON array; when older rows are left, the `Link` (`rel="next"`) and
/// `X-Next-Cursor` headers say how to ask for them. The body stays a plain array, as before
/// pagination.
fn paged<T: serde::Serialize>(path: &str, rows: &[T], limit: u32, next: Option<i64>) -> Reply {
    let json = warp::reply::json(&rows);
    match next {
        None => Box::new(json),
        Some(cursor) => Box::new(warp::reply::with_header(
            warp::reply::with_header(json, "x-next-cursor", cursor.to_string()),
            "link",
            format!("<{path}?limit={limit}&before={cursor}>; rel=\"next\""),
        )),
    }
}

fn bad_request(message: String) -> Result<Reply, warp::Rejection> {
    Ok(reply_json(
        StatusCode::BAD_REQUEST,
        &json!({ "error": message }),
    ))
}

fn unavailable() -> Result<Reply, warp::Rejection> {
    Ok(reply_json(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({ "error": "journal unavailable" }),
    ))
}

/// `GET /api/jobs?limit=&before=`: one page of jobs (one per forge, repo and tag), newest first.
pub async fn jobs(
    state: Arc<AppState>,
    query: HashMap<String, String>,
) -> Result<Reply, warp::Rejection> {
    let q = match page_query(&query) {
        Ok(q) => q,
        Err(message) => return bad_request(message),
    };
    match state.journal.jobs_page(q.limit, q.before).await {
        Ok(page) => Ok(paged("/api/jobs", &page.rows, q.limit, page.next)),
        Err(e) => {
            tracing::error!(error = %e, "Cannot read jobs.");
            unavailable()
        }
    }
}

/// `GET /api/deliveries?limit=&before=`: one page of journaled deliveries, newest first. The
/// first page (no cursor) also holds the rejected deliveries kept in memory, by arrival time,
/// within the same limit.
pub async fn deliveries(
    state: Arc<AppState>,
    query: HashMap<String, String>,
) -> Result<Reply, warp::Rejection> {
    let q = match page_query(&query) {
        Ok(q) => q,
        Err(message) => return bad_request(message),
    };
    let page = match state.journal.deliveries_page(q.limit, q.before).await {
        Ok(page) => page,
        Err(e) => {
            tracing::error!(error = %e, "Cannot read deliveries.");
            return unavailable();
        }
    };
    let journaled = page.rows.len();
    let mut rows: Vec<(Option<i64>, DeliveryRow)> =
        page.rows.into_iter().map(|(s, r)| (Some(s), r)).collect();
    if q.before.is_none() {
        // Rejections take at most half of a page the journal could fill, so a flood of them
        // never hides the deliveries that were taken.
        let share = (q.limit as usize)
            .div_ceil(2)
            .max((q.limit as usize).saturating_sub(journaled));
        rows.extend(state.rejected().into_iter().take(share).map(|r| (None, r)));
        // RFC 3339 UTC strings of one format sort by time.
        rows.sort_by(|a, b| b.1.received_at.cmp(&a.1.received_at));
        rows.truncate(q.limit as usize);
    }
    let kept = rows.iter().filter(|(s, _)| s.is_some()).count();
    // Older journaled rows are left when the journal said so or the merge pushed some out; they
    // follow the oldest one shown (or, when none was, start from the newest).
    let next = if page.next.is_some() || kept < journaled {
        Some(rows.iter().rev().find_map(|(s, _)| *s).unwrap_or(i64::MAX))
    } else {
        None
    };
    let rows: Vec<DeliveryRow> = rows.into_iter().map(|(_, r)| r).collect();
    Ok(paged("/api/deliveries", &rows, q.limit, next))
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
    match state.journal.job_for(&recipe, &tag).await {
        Ok(Some(job)) => Ok(reply_json(
            StatusCode::OK,
            &JobForTag {
                job: Some(job.summary()),
            },
        )),
        Ok(None) => Ok(reply_json(StatusCode::NOT_FOUND, &JobForTag { job: None })),
        Err(e) => {
            tracing::error!(recipe = %recipe, tag = %tag, error = %e, "Cannot read the job for a tag.");
            unavailable()
        }
    }
}
