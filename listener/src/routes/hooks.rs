//! `POST /hooks/gitea` (Gitea, Forgejo) and `POST /hooks/github`: journal a verified delivery.
//!
//! The request is verified and parsed before it gets here, by the extractor in
//! [`super::delivery`]; this handler only journals the typed [`Delivery`]. Tag events of enrolled
//! recipes are answered 202 once durable in the journal; everything else verified is answered
//! 200 and recorded without waiting.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use warp::http::StatusCode;

use crate::clock::now_text;
use crate::event;
use crate::journal::{Intake, IntakeFact, Outcome};
use crate::routes::delivery::Delivery;
use crate::routes::{reply_json, AppState, Reply};

/// Journals one verified delivery and answers it.
pub async fn handle(delivery: Delivery, state: Arc<AppState>) -> Result<Reply, warp::Rejection> {
    let Delivery {
        forge,
        id: delivery,
        event: event_name,
        fact,
    } = delivery;
    let started = Instant::now();
    let intake = Intake {
        forge,
        delivery: delivery.clone(),
        event: event::safe(&event_name),
        fact,
        received_at: now_text(),
    };
    let (repo, tag) = match &intake.fact {
        IntakeFact::NewTag { repo, tag, .. } => (Some(repo.clone()), Some(tag.to_string())),
        IntakeFact::Deleted { repo, tag, .. } => (Some(repo.clone()), Some(tag.clone())),
        IntakeFact::Ignored { repo, tag, .. } | IntakeFact::Rejected { repo, tag, .. } => {
            (repo.clone(), tag.clone())
        }
    };
    let repo = repo.unwrap_or_default();
    let tag = tag.unwrap_or_default();
    if let IntakeFact::Ignored { reason, .. } | IntakeFact::Rejected { reason, .. } = &intake.fact {
        let outcome = if matches!(intake.fact, IntakeFact::Rejected { .. }) {
            "rejected"
        } else {
            "ignored"
        };
        let reason = reason.clone();
        state.metrics.delivery(if outcome == "rejected" {
            "rejected_forge"
        } else {
            outcome
        });
        if !state.journal.intake_later(intake) {
            state.metrics.ignored_dropped();
        }
        tracing::info!(delivery = %delivery, event = %event_name, repo = %repo, tag = %tag, outcome, reason = %reason, "Webhook delivery.");
        return Ok(reply_json(
            StatusCode::OK,
            &json!({ "outcome": outcome, "reason": reason }),
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
