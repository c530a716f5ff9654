//! `GET /`: the status page, rendered on the server as plain HTML (no scripts).
//!
//! Enrolled recipes with their canonical (version, commit, date, pin) read from the state dir,
//! the last event per recipe, and the jobs that need attention (pending, failed, flagged): each
//! section counts all of them but lists only the newest [`SECTION_ROWS`], so the page stays small
//! after a burst of tags; `/api/jobs` pages through the rest.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::journal::{Job, Section};
use crate::routes::{AppState, Reply};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:2em}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}th{background:#eee}\
.failed{color:#a00}.pending{color:#a60}.ok{color:#070}code{font-size:12px}";

/// The most jobs one section of the page lists.
pub const SECTION_ROWS: u32 = 50;

/// Returns the newest jobs of `section` and their total, or none when the journal cannot say.
async fn section(state: &AppState, section: Section) -> (Vec<Job>, u64) {
    match state.journal.section(section, SECTION_ROWS).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "Cannot read jobs for the status page.");
            (Vec::new(), 0)
        }
    }
}

/// Returns the note after a section's title when it lists fewer jobs than it has.
fn shown(listed: usize, total: u64) -> String {
    if (listed as u64) < total {
        format!(", newest {listed} shown")
    } else {
        String::new()
    }
}

/// Renders the page.
pub async fn page(state: Arc<AppState>) -> Result<Reply, warp::Rejection> {
    let last = state
        .journal
        .last_event_per_recipe()
        .await
        .unwrap_or_default();
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>canon-listener</title><style>{STYLE}</style></head><body>\
         <h1>canon-listener</h1><p>Journal: {} deliveries shown at <a href=\"/api/deliveries\">/api/deliveries</a>, jobs at <a href=\"/api/jobs\">/api/jobs</a>, <a href=\"/metrics\">metrics</a>.</p>",
        if state.journal.is_healthy() { "<span class=\"ok\">writable</span>;" } else { "<span class=\"failed\">NOT writable</span>;" }
    );
    h.push_str("<h2>Recipes</h2><table id=\"recipes\"><tr><th>Recipe</th><th>Upstream</th><th>Canonical</th><th>Commit</th><th>Promoted</th><th>Last event</th></tr>");
    for r in &state.enrollment.recipes {
        let canonical = state.state.read_canonical(&r.name);
        let (version, commit, date) = match &canonical {
            Ok(Some(c)) => (
                format!(
                    "{}{}",
                    esc(&c.version.to_string()),
                    if c.pinned.is_some() { " (pinned)" } else { "" }
                ),
                esc(&c.commit.chars().take(12).collect::<String>()),
                esc(&c
                    .promoted_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()),
            ),
            Ok(None) => ("none yet".into(), String::new(), String::new()),
            Err(e) => (
                format!(
                    "<span class=\"failed\">unreadable: {}</span>",
                    esc(&e.to_string())
                ),
                String::new(),
                String::new(),
            ),
        };
        let last_event = last
            .iter()
            .find(|(name, _)| name == r.name.as_str())
            .map(|(_, at)| esc(at))
            .unwrap_or_else(|| "none".into());
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{version}</td><td><code>{commit}</code></td><td>{date}</td><td>{last_event}</td></tr>",
            esc(r.name.as_str()),
            esc(r.upstream.full_name.as_deref().unwrap_or(&r.upstream.url)),
        );
    }
    h.push_str("</table>");
    for (title, id, class, which) in [
        ("Pending jobs", "pending", "pending", Section::Pending),
        ("Failed jobs", "failed", "failed", Section::Failed),
    ] {
        let (rows, total) = section(&state, which).await;
        let _ = write!(h, "<h2>{title} ({total}{})</h2><table id=\"{id}\"><tr><th>Job</th><th>Recipe</th><th>Tag</th><th>State</th><th>Attempts</th><th>Error</th><th>Flags</th></tr>", shown(rows.len(), total));
        for j in &rows {
            let _ = write!(
                h,
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                j.id,
                esc(&j.recipe),
                esc(&j.tag),
                j.state.as_str(),
                j.attempts,
                esc(j.error.as_deref().unwrap_or("")),
                esc(&j.flags.join("; ")),
            );
        }
        h.push_str("</table>");
    }
    let (flagged, total) = section(&state, Section::Flagged).await;
    let _ = write!(
        h,
        "<h2>Flagged tags ({total}{})</h2><ul id=\"flagged\">",
        shown(flagged.len(), total)
    );
    for j in &flagged {
        let _ = write!(
            h,
            "<li>{} {}: {}</li>",
            esc(&j.recipe),
            esc(&j.tag),
            esc(&j.flags.join("; "))
        );
    }
    h.push_str("</ul></body></html>");
    Ok(Box::new(warp::reply::html(h)))
}

#[cfg(test)]
mod tests {
    use super::{esc, shown};

    #[test]
    fn a_section_says_when_it_lists_only_the_newest() {
        assert_eq!(shown(3, 3), "");
        assert_eq!(shown(0, 0), "");
        assert_eq!(shown(50, 30_000), ", newest 50 shown");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
