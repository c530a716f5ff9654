//! `POST /hooks/gitea` (Gitea, Forgejo) and `POST /hooks/github`: verify, classify, journal.
//!
//! Order of checks, cheapest and safest first: content type (form-encoded hooks sign the decoded
//! field, not the body, so they are refused with 415), declared length (413), the body read with
//! a 1 MiB cap (413), the signature over the raw bytes (401, nothing stored), the event header
//! and JSON (400). Only then is the payload looked at. Tag events of enrolled recipes are
//! answered 202 once durable in the journal; everything else verified is answered 200 and
//! recorded without waiting.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use canon_shared::forge::ForgeKind;
use canon_shared::version::ReleaseVersion;
use futures_util::{Stream, StreamExt};
use serde_json::json;
use warp::http::{HeaderMap, StatusCode};

use crate::clock::now_text;
use crate::event::{self, Fact};
use crate::journal::{DeliveryRow, Intake, IntakeFact, Outcome};
use crate::routes::{reply_json, AppState, Reply};
use crate::verify;

/// The largest body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

fn header_text(headers: &HeaderMap, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        headers
            .get(*n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    })
}

/// Returns a delivery id safe to store and log: `[A-Za-z0-9-]`, at most 64 characters.
fn delivery_id(headers: &HeaderMap) -> String {
    header_text(
        headers,
        &[
            "x-gitea-delivery",
            "x-forgejo-delivery",
            "x-github-delivery",
            "x-gogs-delivery",
        ],
    )
    .unwrap_or_default()
    .chars()
    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
    .take(64)
    .collect()
}

async fn read_body<S, B>(mut body: S) -> Result<Bytes, StatusCode>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        if buf.len() + chunk.remaining() > MAX_BODY {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

/// Handles one delivery to `/hooks/{kind}`.
pub async fn handle<S, B>(
    kind: String,
    headers: HeaderMap,
    body: S,
    state: Arc<AppState>,
) -> Result<Reply, warp::Rejection>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let forge = match kind.as_str() {
        "github" => ForgeKind::GitHub,
        "gitea" | "forgejo" | "gogs" => {
            if headers.contains_key("x-forgejo-event") {
                ForgeKind::Forgejo
            } else {
                ForgeKind::Gitea
            }
        }
        _ => {
            return Ok(reply_json(
                StatusCode::NOT_FOUND,
                &json!({ "error": "not found: use /hooks/gitea or /hooks/github" }),
            ))
        }
    };
    let delivery = delivery_id(&headers);
    let reject = |status: StatusCode, outcome: &str, reason: &str| {
        state.metrics.delivery(outcome);
        state.remember_rejected(DeliveryRow {
            delivery: delivery.clone(),
            forge,
            event: header_text(
                &headers,
                &[
                    "x-forgejo-event",
                    "x-gitea-event",
                    "x-github-event",
                    "x-gogs-event",
                ],
            )
            .map(|e| event::safe(&e))
            .unwrap_or_default(),
            repo: None,
            recipe: None,
            tag: None,
            outcome: "rejected".into(),
            reason: Some(reason.to_string()),
            job: None,
            received_at: now_text(),
            repeats: 0,
        });
        tracing::warn!(delivery = %delivery, forge = forge.as_str(), outcome = "rejected", status = status.as_u16(), reason, "Webhook delivery rejected.");
        Ok(reply_json(status, &json!({ "error": reason })))
    };

    let content_type = header_text(&headers, &["content-type"]).unwrap_or_default();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/x-www-form-urlencoded" || mime == "multipart/form-data" {
        return reject(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "rejected_request",
            "form-encoded webhooks are not supported: set the hook's content type to JSON (application/json)",
        );
    }
    if let Some(len) =
        header_text(&headers, &["content-length"]).and_then(|l| l.parse::<u64>().ok())
    {
        if len > MAX_BODY as u64 {
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "rejected_request",
                "body larger than 1 MiB",
            );
        }
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(StatusCode::PAYLOAD_TOO_LARGE) => {
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "rejected_request",
                "body larger than 1 MiB",
            )
        }
        Err(status) => return reject(status, "rejected_request", "the body could not be read"),
    };
    if let Err(e) = verify::verify(|n| header(&headers, n), &body, &state.secrets) {
        return reject(
            StatusCode::UNAUTHORIZED,
            "rejected_signature",
            &e.to_string(),
        );
    }
    let Some(event_name) = header_text(
        &headers,
        &[
            "x-forgejo-event",
            "x-gitea-event",
            "x-github-event",
            "x-gogs-event",
        ],
    ) else {
        return reject(
            StatusCode::BAD_REQUEST,
            "rejected_request",
            "no event header (X-Gitea-Event or X-GitHub-Event)",
        );
    };
    let event_name = event_name.to_ascii_lowercase();
    let fact = match event::parse(&event_name, &body) {
        Ok(f) => f,
        Err(e) => return reject(StatusCode::BAD_REQUEST, "rejected_request", &e.to_string()),
    };
    let started = Instant::now();
    let intake = Intake {
        forge,
        delivery: delivery.clone(),
        event: event::safe(&event_name),
        fact: classify(&state, fact),
        received_at: now_text(),
    };
    let (repo, tag) = match &intake.fact {
        IntakeFact::NewTag { repo, tag, .. } | IntakeFact::Deleted { repo, tag, .. } => {
            (Some(repo.clone()), Some(tag.clone()))
        }
        IntakeFact::Ignored { repo, tag, .. } => (repo.clone(), tag.clone()),
    };
    let repo = repo.unwrap_or_default();
    let tag = tag.unwrap_or_default();
    if let IntakeFact::Ignored { reason, .. } = &intake.fact {
        let reason = reason.clone();
        state.metrics.delivery("ignored");
        if !state.journal.intake_later(intake) {
            state.metrics.ignored_dropped();
        }
        tracing::info!(delivery = %delivery, event = %event_name, repo = %repo, tag = %tag, outcome = "ignored", reason = %reason, "Webhook delivery.");
        return Ok(reply_json(
            StatusCode::OK,
            &json!({ "outcome": "ignored", "reason": reason }),
        ));
    }
    match state.journal.intake(intake).await {
        Ok(result) => {
            state.metrics.journal_latency.observe(started.elapsed());
            state.metrics.delivery(result.outcome.as_str());
            if result.outcome == Outcome::Accepted {
                state.notify.notify_one();
            }
            tracing::info!(delivery = %delivery, event = %event_name, repo = %repo, tag = %tag, outcome = result.outcome.as_str(), job = result.job, "Webhook delivery.");
            Ok(reply_json(
                StatusCode::ACCEPTED,
                &json!({ "outcome": result.outcome.as_str(), "job": result.job }),
            ))
        }
        Err(e) => {
            state.metrics.delivery("error");
            tracing::error!(delivery = %delivery, event = %event_name, repo = %repo, tag = %tag, outcome = "error", error = %e, "Webhook delivery could not be journaled.");
            // No error text in a 5xx body; the log has it.
            Ok(reply_json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "error": "not stored; try again" }),
            ))
        }
    }
}

/// Maps a parsed fact onto the enrollment: a new tag of an enrolled recipe that is a release
/// tag stays a new tag; anything else becomes ignored with its reason.
fn classify(state: &AppState, fact: Fact) -> IntakeFact {
    match fact {
        Fact::NewTag {
            repo,
            tag,
            ref_sha,
            commit_hint,
        } => {
            let full = event::safe(&repo.full_name);
            let Some(recipe) = state.enrollment.by_upstream(repo.candidates()) else {
                return IntakeFact::Ignored {
                    repo: Some(full),
                    recipe: None,
                    tag: Some(event::safe(&tag)),
                    reason: "repository is not enrolled".into(),
                };
            };
            if let Err(e) = ReleaseVersion::parse(&tag) {
                return IntakeFact::Ignored {
                    repo: Some(full),
                    recipe: Some(recipe.name.clone()),
                    tag: Some(event::safe(&tag)),
                    reason: format!("not a release tag: {e}"),
                };
            }
            if tag.len() > 255 {
                return IntakeFact::Ignored {
                    repo: Some(full),
                    recipe: Some(recipe.name.clone()),
                    tag: Some(event::safe(&tag)),
                    reason: "tag name longer than 255 characters".into(),
                };
            }
            IntakeFact::NewTag {
                repo: full,
                recipe: recipe.name.clone(),
                tag,
                ref_sha,
                commit_hint,
            }
        }
        Fact::TagDeleted { repo, tag } => IntakeFact::Deleted {
            recipe: state
                .enrollment
                .by_upstream(repo.candidates())
                .map(|r| r.name.clone()),
            repo: event::safe(&repo.full_name),
            tag: event::safe(&tag),
        },
        Fact::Ignored { repo, tag, reason } => IntakeFact::Ignored {
            recipe: repo
                .as_ref()
                .and_then(|r| state.enrollment.by_upstream(r.candidates()))
                .map(|r| r.name.clone()),
            repo: repo.map(|r| event::safe(&r.full_name)),
            tag: tag.map(|t| event::safe(&t)),
            reason,
        },
    }
}
