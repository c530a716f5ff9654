//! `GET /`: the status page, rendered on the server as plain HTML (no scripts).
//!
//! One table row per enrolled recipe: its canonical (version, commit, promoted date, pin), where
//! it stands (the badge's standing, [`super::badge::facts`]), who holds its warm data on this host
//! (read live from the state dir's holds, [`canon_shared::state::holds`]), the latest release tag
//! the listener knows of and its job, and the last event. Then the newest [`RECENT_JOBS`] jobs of any state
//! with their Drone build and outcome, newest first, and the jobs that need attention (pending,
//! failed, flagged): each of those sections counts all of them but lists only the newest
//! [`SECTION_ROWS`]. So the page stays the same size however large the journal grows;
//! `/api/jobs` pages through the rest.
//!
//! The CSS reflows every table below 40em: each row becomes a card whose cells carry their
//! column's name, so the page reads in a narrow window without scrolling sideways. URLs shown
//! pass [`without_userinfo`] (a URL) or [`userinfo_masked_in`] (text quoting URLs), and a link is
//! made only of an `http(s)` URL.

use std::fmt::Write as _;
use std::sync::Arc;

use canon_shared::recipe::RecipeName;
use canon_shared::secret::{userinfo_masked_in, without_userinfo};
use canon_shared::state::holds::WarmHolds;
use time::format_description::well_known::Rfc3339;

use crate::journal::{Job, Section};
use crate::routes::badge;
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

const STYLE: &str = "*{box-sizing:border-box}\
body{font-family:sans-serif;margin:0 auto;padding:1em;max-width:90em;color:#222;line-height:1.35}\
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.2em 0 .4em}\
table{border-collapse:collapse;width:100%;margin-bottom:1em}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px;vertical-align:top}\
td.long{overflow-wrap:anywhere}\
th{background:#eee}code{font-size:12px}\
.failed{color:#a00}.pending,.testing,.attached,.promoting{color:#a60}.ok,.current{color:#070}\
.pinned,.none,.idle{color:#666}\
@media (max-width:40em){body{padding:.5em}\
table,tbody,tr,td{display:block;width:100%}thead{display:none}\
tr{border:1px solid #ccc;margin-bottom:.6em}td{border:0;border-top:1px solid #eee;overflow-wrap:anywhere}\
td:empty{display:none}\
td::before{content:attr(data-label);display:block;font-size:11px;font-weight:bold;color:#555}\
td:first-child{border-top:0}}";

/// The most jobs one attention section of the page lists.
pub const SECTION_ROWS: u32 = 50;

/// How many of the newest jobs the page lists.
pub const RECENT_JOBS: u32 = 50;

/// The columns whose text may break anywhere (URLs, errors), so they never widen a table past
/// the window.
const LONG: &[&str] = &["Upstream", "Pin", "Warm data", "Note", "Error", "Flags"];

/// One table: its id, column names, and rows of (class, cells as HTML).
struct Table<'a> {
    id: &'a str,
    columns: &'a [&'a str],
    rows: Vec<(&'a str, Vec<String>)>,
}

impl Table<'_> {
    /// Writes the table; every cell carries its column's name for the narrow layout.
    fn write(&self, h: &mut String) {
        let _ = write!(h, "<table id=\"{}\"><thead><tr>", self.id);
        for c in self.columns {
            let _ = write!(h, "<th>{c}</th>");
        }
        h.push_str("</tr></thead><tbody>");
        for (class, cells) in &self.rows {
            if class.is_empty() {
                h.push_str("<tr>");
            } else {
                let _ = write!(h, "<tr class=\"{class}\">");
            }
            for (c, cell) in self.columns.iter().zip(cells) {
                let long = if LONG.contains(c) {
                    " class=\"long\""
                } else {
                    ""
                };
                let _ = write!(h, "<td data-label=\"{c}\"{long}>{cell}</td>");
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table>");
    }
}

/// Returns an RFC 3339 time to the second ("2024-05-01 12:00:01Z"), or the text as it is when it
/// is not one.
fn short_time(text: &str) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&format).ok())
        .unwrap_or_else(|| text.to_string())
}

/// Returns a build cell: a link when the URL is `http(s)` (user info masked), else the number.
fn build_cell(build: Option<u64>, link: Option<&str>) -> String {
    let label = build.map_or_else(String::new, |b| format!("#{b}"));
    match link.map(without_userinfo) {
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            let text = if label.is_empty() { "build" } else { &label };
            format!("<a href=\"{}\">{}</a>", esc(&url), esc(text))
        }
        _ => label,
    }
}

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

/// Returns the warm data cell: who holds `recipe`'s warm data on this host, read live (a holder
/// whose process died is not shown).
fn warm_cell(state: &AppState, recipe: &RecipeName) -> String {
    match WarmHolds::new(state.state.root(), recipe).status() {
        Ok(warm) => format!(
            "<span class=\"{}\">{}</span>",
            warm.status.as_str(),
            esc(&warm.to_string())
        ),
        Err(e) => {
            tracing::error!(recipe = %recipe, error = %e, "Cannot read who holds the warm data for the status page.");
            // The error names a file; it carries no secret.
            format!(
                "<span class=\"failed\">unreadable: {}</span>",
                esc(&e.to_string())
            )
        }
    }
}

/// Writes the recipes table.
async fn recipes(state: &AppState, h: &mut String) {
    let last = state
        .journal
        .last_event_per_recipe()
        .await
        .unwrap_or_default();
    let sources = super::tag_sources::tag_sources(state, state.polling()).await;
    let mut rows = Vec::with_capacity(state.enrollment.recipes.len());
    for r in &state.enrollment.recipes {
        let name = r.name.as_str();
        let tags_by = sources
            .iter()
            .find(|(n, _)| n == &r.name)
            .map_or("", |(_, s)| s.as_str())
            .to_string();
        let upstream = without_userinfo(r.upstream.full_name.as_deref().unwrap_or(&r.upstream.url));
        let last_event = last
            .iter()
            .find(|(n, _)| n == name)
            .map_or_else(|| "none".into(), |(_, at)| esc(&short_time(at)));
        let warm = warm_cell(state, &r.name);
        let known = match badge::facts(state, &r.name).await {
            Ok(known) => known,
            Err(e) => {
                tracing::error!(recipe = %name, error = %e, "Cannot read the recipe's facts for the status page.");
                let cells = vec![
                    esc(name),
                    esc(&upstream),
                    // The error names a file or the journal; it carries no secret.
                    format!(
                        "<span class=\"failed\">unreadable: {}</span>",
                        esc(&e.to_string())
                    ),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    warm,
                    String::new(),
                    last_event,
                    tags_by,
                ];
                rows.push(("", cells));
                continue;
            }
        };
        let (version, commit, promoted, pin) = match &known.canonical {
            Some(c) => (
                esc(&c.version.to_string()),
                format!(
                    "<code>{}</code>",
                    esc(&c.commit.chars().take(12).collect::<String>())
                ),
                esc(&short_time(
                    &c.promoted_at.format(&Rfc3339).unwrap_or_default(),
                )),
                c.pinned.as_ref().map_or_else(String::new, |p| {
                    format!(
                        "{} (by {}, {})",
                        esc(&p.reason),
                        esc(&p.by),
                        esc(&short_time(&p.at.format(&Rfc3339).unwrap_or_default()))
                    )
                }),
            ),
            None => (
                "none yet".into(),
                String::new(),
                String::new(),
                String::new(),
            ),
        };
        let standing = known.status.standing();
        let latest = known.latest.as_ref().map_or_else(
            || "none known".into(),
            |(v, job)| format!("{} ({job})", esc(&v.to_string())),
        );
        rows.push((
            "",
            vec![
                esc(name),
                esc(&upstream),
                version,
                commit,
                promoted,
                pin,
                format!(
                    "<span class=\"{}\">{}</span>",
                    standing.as_str(),
                    esc(&known.status.to_string())
                ),
                warm,
                latest,
                last_event,
                tags_by,
            ],
        ));
    }
    Table {
        id: "recipes",
        columns: &[
            "Recipe",
            "Upstream",
            "Canonical",
            "Commit",
            "Promoted",
            "Pin",
            "Status",
            "Warm data",
            "Latest tag",
            "Last event",
            "Tags by",
        ],
        rows,
    }
    .write(h);
}

/// Returns the class a job's row takes.
fn job_class(job: &Job) -> &'static str {
    use crate::journal::JobState::*;
    match job.state {
        Failed => "failed",
        Queued | Running | Retrying => "pending",
        Done => "ok",
        Skipped => "",
    }
}

/// Writes the newest jobs of any state.
async fn recent(state: &AppState, h: &mut String) {
    let jobs = match state.journal.jobs_page(RECENT_JOBS, None).await {
        Ok(page) => page.rows,
        Err(e) => {
            tracing::error!(error = %e, "Cannot read the recent jobs for the status page.");
            Vec::new()
        }
    };
    let _ = write!(
        h,
        "<h2>Recent jobs (newest {RECENT_JOBS}, newest first)</h2>"
    );
    Table {
        id: "recent",
        columns: &[
            "Job", "Recipe", "Tag", "Outcome", "Build", "Attempts", "Updated", "Note",
        ],
        rows: jobs
            .iter()
            .map(|j| {
                let mut note = j.error.clone().unwrap_or_default();
                if !j.flags.is_empty() {
                    if !note.is_empty() {
                        note.push_str("; ");
                    }
                    note.push_str(&j.flags.join("; "));
                }
                (
                    job_class(j),
                    vec![
                        j.id.to_string(),
                        esc(j.recipe.as_str()),
                        esc(&j.tag.to_string()),
                        j.state.as_str().to_string(),
                        build_cell(j.build, j.build_link.as_deref()),
                        j.attempts.to_string(),
                        esc(&short_time(&j.updated_at)),
                        esc(&userinfo_masked_in(&note)),
                    ],
                )
            })
            .collect(),
    }
    .write(h);
}

/// Renders the page.
pub async fn page(state: Arc<AppState>) -> Result<Reply, warp::Rejection> {
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>canon-listener</title><style>{STYLE}</style></head><body>\
         <h1>canon-listener</h1><p>Journal: {} deliveries at <a href=\"/api/deliveries\">/api/deliveries</a>, jobs at <a href=\"/api/jobs\">/api/jobs</a>, <a href=\"/metrics\">metrics</a>.</p>",
        if state.journal.is_healthy() { "<span class=\"ok\">writable</span>;" } else { "<span class=\"failed\">NOT writable</span>;" }
    );
    h.push_str("<h2>Recipes</h2>");
    recipes(&state, &mut h).await;
    recent(&state, &mut h).await;
    for (title, id, class, which) in [
        ("Pending jobs", "pending", "pending", Section::Pending),
        ("Failed jobs", "failed", "failed", Section::Failed),
    ] {
        let (rows, total) = section(&state, which).await;
        let _ = write!(h, "<h2>{title} ({total}{})</h2>", shown(rows.len(), total));
        Table {
            id,
            columns: &[
                "Job", "Recipe", "Tag", "State", "Attempts", "Error", "Flags",
            ],
            rows: rows
                .iter()
                .map(|j| {
                    (
                        class,
                        vec![
                            j.id.to_string(),
                            esc(j.recipe.as_str()),
                            esc(&j.tag.to_string()),
                            j.state.as_str().to_string(),
                            j.attempts.to_string(),
                            esc(&userinfo_masked_in(j.error.as_deref().unwrap_or(""))),
                            esc(&j.flags.join("; ")),
                        ],
                    )
                })
                .collect(),
        }
        .write(&mut h);
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
            esc(j.recipe.as_str()),
            esc(&j.tag.to_string()),
            esc(&j.flags.join("; "))
        );
    }
    h.push_str("</ul></body></html>");
    Ok(Box::new(warp::reply::html(h)))
}

#[cfg(test)]
mod tests {
    use super::{build_cell, esc, short_time, shown};

    #[test]
    fn times_are_shown_to_the_second_in_utc() {
        assert_eq!(
            short_time("2024-05-01T12:00:01.123456Z"),
            "2024-05-01 12:00:01Z"
        );
        assert_eq!(
            short_time("2024-05-01T14:00:01+02:00"),
            "2024-05-01 12:00:01Z"
        );
        assert_eq!(short_time("not a time"), "not a time");
    }

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

    #[test]
    fn a_build_link_is_an_http_url_without_user_info() {
        // (what it shows, build, link, cell)
        let cases: &[(&str, Option<u64>, Option<&str>, &str)] = &[
            ("no build yet", None, None, ""),
            ("a number without a link", Some(7), None, "#7"),
            (
                "a link",
                Some(7),
                Some("https://drone.example/o/r/7"),
                "<a href=\"https://drone.example/o/r/7\">#7</a>",
            ),
            (
                "user info is masked",
                Some(7),
                Some("https://user:s3cret@drone.example/o/r/7"),
                "<a href=\"https://***@drone.example/o/r/7\">#7</a>",
            ),
            (
                "a script URL is no link",
                Some(7),
                Some("javascript:alert(1)"),
                "#7",
            ),
            (
                "the link is escaped",
                None,
                Some("https://d.example/?a=1&b=\"2\""),
                "<a href=\"https://d.example/?a=1&amp;b=&quot;2&quot;\">build</a>",
            ),
        ];
        for (says, build, link, want) in cases {
            assert_eq!(build_cell(*build, *link), *want, "{says}");
        }
    }
}
