//! The sweep's report: one entry per recipe, the totals, the table the log shows, and the exit
//! code they mean.

use std::fmt::Write as _;

use canon_shared::commit::CommitId;
use canon_shared::listener_api::{SweepOutcome, SweepRecipeOutcome};
use canon_shared::recipe::RecipeName;
use canon_shared::state::holds::WarmStatus;
use serde::Serialize;

use crate::exit::EXIT_RED;

/// One recipe's line in the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecipeEntry {
    /// The recipe.
    pub recipe: String,
    /// The canonical version before the sweep.
    pub canonical: Option<String>,
    /// The latest upstream release tag.
    pub latest: Option<String>,
    /// The commit the latest tag points to upstream.
    pub latest_commit: Option<CommitId>,
    /// `run` or `skip`; `null` when an error came before a decision.
    pub decision: Option<String>,
    /// Why.
    pub reason: String,
    /// What was done: a build number, an inline result, or the error.
    pub action: String,
    /// The error, when this recipe failed.
    pub error: Option<String>,
    /// Tags the sweep had to start with no earlier build or listener job: missed webhooks
    /// (inline, counted only when `listener_url` names a listener that answers).
    pub missed_webhooks: u32,
    /// The mirror sync's one-line summary (`null` on a dry run).
    pub sync: Option<String>,
    /// Upstream tags that moved (same name, new commit).
    pub moved_tags: Vec<String>,
    /// Mirror PRs closed because upstream merged them.
    pub closed_prs: Vec<u64>,
    /// Mirror PRs that should have been closed but could not be, or why none could be listed.
    pub pr_errors: Vec<String>,
    /// Size of the mirror cache, in bytes.
    pub mirror_cache_bytes: Option<u64>,
    /// Size of the warm canonical's volumes, in bytes (docker runner).
    pub warm_volume_bytes: Option<u64>,
    /// Who held the recipe's warm data on this host when its sweep ended: idle, attached (runs
    /// copying it) or promoting, with the holders. `null` on a dry run, which writes nothing
    /// (reading the holds removes the records of holders that died), or when the holds cannot be
    /// read.
    pub warm_status: Option<WarmStatus>,
}

/// The sweep report (`--report`, default `sweep-report.json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepReport {
    /// When the sweep started, RFC 3339 UTC.
    pub started_at: String,
    /// The enrollment file.
    pub config: String,
    /// True for a dry run.
    pub dry_run: bool,
    /// `drone`, `inline` or `dry-run`.
    pub launch: String,
    /// One entry per enrolled recipe, in enrollment order.
    pub recipes: Vec<RecipeEntry>,
    /// What the cleanup of killed runs removed (or would remove), or why it did not run.
    pub cleanup: Vec<String>,
    /// How many recipes errored.
    pub errors: usize,
    /// How many tags were started or run.
    pub started: usize,
    /// Why the missed-webhook count is unknown, when it is: an inline sweep with no
    /// `listener_url` cannot tell a missed webhook, nor one whose listener did not answer.
    pub missed_webhooks_unknown: Option<String>,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl RecipeEntry {
    /// Records `error` as this recipe's error and action.
    pub(super) fn fail(&mut self, error: String) {
        self.action = format!("error: {error}");
        self.error = Some(error);
    }
}

/// Returns what the listener is told of a finished sweep (`POST /api/sweeps`): per recipe, ok
/// unless it errored. No error text travels.
pub fn outcome(report: &SweepReport) -> SweepOutcome {
    SweepOutcome {
        started_at: report.started_at.clone(),
        seconds: report.seconds,
        dry_run: report.dry_run,
        recipes: report
            .recipes
            .iter()
            .filter_map(|e| {
                Some(SweepRecipeOutcome {
                    recipe: RecipeName::parse(&e.recipe).ok()?,
                    ok: e.error.is_none(),
                })
            })
            .collect(),
    }
}

/// Returns the exit code for a finished sweep: 1 when any recipe (or the cleanup) errored;
/// `idle` when nothing needed doing; else 0.
pub fn exit_code(report: &SweepReport, idle: u8) -> u8 {
    if report.errors > 0 {
        EXIT_RED
    } else if report.started == 0 {
        idle
    } else {
        0
    }
}

/// Renders the report as the table the log shows.
pub fn table(report: &SweepReport) -> String {
    let header = [
        "recipe",
        "canonical",
        "latest",
        "decision",
        "reason",
        "action",
    ];
    let rows: Vec<[String; 6]> = report
        .recipes
        .iter()
        .map(|e| {
            [
                e.recipe.clone(),
                e.canonical.clone().unwrap_or_else(|| "-".into()),
                e.latest.clone().unwrap_or_else(|| "-".into()),
                e.decision.clone().unwrap_or_else(|| "-".into()),
                if e.reason.is_empty() {
                    "-".into()
                } else {
                    e.reason.clone()
                },
                e.action.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&header.map(String::from), &mut out);
    line(&widths.map(|w| "-".repeat(w)), &mut out);
    for row in &rows {
        line(row, &mut out);
    }
    for c in &report.cleanup {
        let _ = writeln!(out, "cleanup: {c}");
    }
    for e in &report.recipes {
        if let Some(warm) = e.warm_status.as_ref().filter(|w| !w.is_idle()) {
            let _ = writeln!(out, "warm data of {}: {warm}", e.recipe);
        }
    }
    let missed = match &report.missed_webhooks_unknown {
        None => format!(
            "{} missed webhook(s)",
            report
                .recipes
                .iter()
                .map(|e| e.missed_webhooks)
                .sum::<u32>()
        ),
        Some(why) => format!("missed webhooks unknown ({why})"),
    };
    let _ = write!(
        out,
        "{} recipe(s), {} started, {} error(s), {}, {:.1}s{}",
        report.recipes.len(),
        report.started,
        report.errors,
        missed,
        report.seconds,
        if report.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::EXIT_IDLE;

    #[test]
    fn exit_code_is_red_on_error_idle_when_nothing_started() {
        let mut r = SweepReport::default();
        assert_eq!(exit_code(&r, EXIT_IDLE), EXIT_IDLE);
        assert_eq!(exit_code(&r, 0), 0);
        r.started = 1;
        assert_eq!(exit_code(&r, EXIT_IDLE), 0);
        r.errors = 1;
        assert_eq!(exit_code(&r, EXIT_IDLE), EXIT_RED);
    }

    #[test]
    fn table_lists_every_recipe_and_totals() {
        let r = SweepReport {
            recipes: vec![
                RecipeEntry {
                    recipe: "app".into(),
                    canonical: Some("1.0.0+1".into()),
                    latest: Some("1.1.0+1".into()),
                    decision: Some("run".into()),
                    reason: "newer".into(),
                    action: "started build #7".into(),
                    missed_webhooks: 1,
                    ..RecipeEntry::default()
                },
                RecipeEntry {
                    recipe: "other".into(),
                    action: "error: boom".into(),
                    error: Some("boom".into()),
                    ..RecipeEntry::default()
                },
            ],
            started: 1,
            errors: 1,
            ..SweepReport::default()
        };
        let t = table(&r);
        assert!(t.lines().next().unwrap().starts_with("recipe"), "{t}");
        assert!(t.contains("app     1.0.0+1"), "{t}");
        assert!(t.contains("started build #7"), "{t}");
        assert!(t.contains("error: boom"), "{t}");
        assert!(
            t.ends_with("2 recipe(s), 1 started, 1 error(s), 1 missed webhook(s), 0.0s"),
            "{t}"
        );
    }

    #[test]
    fn the_table_names_who_holds_warm_data_unless_it_is_idle() {
        use canon_shared::state::holds::{HolderInfo, WarmState};
        let holder = |build: &str, what: &str| HolderInfo {
            build: build.into(),
            what: what.into(),
            pid: 1,
            since: time::OffsetDateTime::UNIX_EPOCH,
        };
        let entry = |recipe: &str, warm: Option<WarmStatus>| RecipeEntry {
            recipe: recipe.into(),
            action: "none".into(),
            warm_status: warm,
            ..RecipeEntry::default()
        };
        let r = SweepReport {
            recipes: vec![
                entry(
                    "copied",
                    Some(WarmStatus {
                        status: WarmState::Attached,
                        holders: vec![
                            holder("12", "run refs/pull/4/head"),
                            holder("13", "run refs/pull/5/head"),
                        ],
                    }),
                ),
                entry("quiet", Some(WarmStatus::idle())),
                entry(
                    "replaced",
                    Some(WarmStatus {
                        status: WarmState::Promoting,
                        holders: vec![holder("7", "")],
                    }),
                ),
                entry("unknown", None),
            ],
            ..SweepReport::default()
        };
        let t = table(&r);
        let warm: Vec<&str> = t.lines().filter(|l| l.starts_with("warm data")).collect();
        assert_eq!(
            warm,
            [
                "warm data of copied: attached (build 12: run refs/pull/4/head; build 13: run refs/pull/5/head)",
                "warm data of replaced: promoting (build 7)",
            ],
            "{t}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["recipes"][0]["warm_status"]["status"], "attached");
        assert_eq!(
            json["recipes"][1]["warm_status"],
            serde_json::json!({"status": "idle"})
        );
        assert_eq!(json["recipes"][3]["warm_status"], serde_json::Value::Null);
    }

    #[test]
    fn the_table_says_when_the_missed_webhook_count_is_unknown() {
        let r = SweepReport {
            missed_webhooks_unknown: Some("no listener_url".into()),
            ..SweepReport::default()
        };
        assert!(
            table(&r).ends_with("0 recipe(s), 0 started, 0 error(s), missed webhooks unknown (no listener_url), 0.0s"),
            "{}",
            table(&r)
        );
    }
}
