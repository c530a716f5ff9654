//! How new release tags reach each recipe: by webhook (one arrived within [`WEBHOOK_FRESH`]), by
//! polling, or only by the weekly sweep. Read by the status page and by [`crate::poll`], which
//! polls exactly the recipes this says are not fed by webhooks.

use std::time::Duration;

use canon_shared::recipe::RecipeName;
use rusqlite::params;

use crate::clock::text_ago;
use crate::journal::POLL_EVENT;
use crate::routes::AppState;

/// How recent a webhook delivery must be for a recipe to count as fed by webhooks (and so not be
/// polled): a week, the sweep's period.
pub const WEBHOOK_FRESH: Duration = Duration::from_secs(7 * 24 * 3600);

/// How new release tags of a recipe reach the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagSource {
    /// A webhook delivery arrived within [`WEBHOOK_FRESH`].
    Webhook,
    /// None did; its upstream is polled.
    Polling,
    /// None did, and polling is off (`CANON_POLL_INTERVAL=0`): only the weekly sweep finds them.
    SweepOnly,
}

impl TagSource {
    /// Returns the words the status page shows.
    pub fn as_str(self) -> &'static str {
        match self {
            TagSource::Webhook => "webhook",
            TagSource::Polling => "polling",
            TagSource::SweepOnly => "weekly sweep only (polling off)",
        }
    }
}

/// Returns the recipes with a webhook delivery (any event but a poll) since `since` (RFC 3339).
pub async fn webhook_fed(state: &AppState, since: String) -> Vec<String> {
    let read = state
        .journal
        .read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT DISTINCT recipe FROM deliveries
                 WHERE recipe IS NOT NULL AND event != ?1 AND received_at >= ?2",
            )?;
            let rows = stmt.query_map(params![POLL_EVENT, since], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .await;
    match read {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read which recipes webhooks feed.");
            Vec::new()
        }
    }
}

/// Returns how tags reach each enrolled recipe, in enrollment order.
pub async fn tag_sources(state: &AppState, polling: bool) -> Vec<(RecipeName, TagSource)> {
    let fed = webhook_fed(state, text_ago(WEBHOOK_FRESH)).await;
    state
        .enrollment
        .recipes
        .iter()
        .map(|r| {
            let source = if fed.iter().any(|n| n == r.name.as_str()) {
                TagSource::Webhook
            } else if polling {
                TagSource::Polling
            } else {
                TagSource::SweepOnly
            };
            (r.name.clone(), source)
        })
        .collect()
}
