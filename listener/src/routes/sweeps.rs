//! `POST /api/sweeps`: the weekly sweep reports each finished run here (when its `listener_url`
//! is set), behind the admin token like the rest of `/api/*`; and the series `/metrics` shows of
//! it, so an alert can say that the sweep stopped running or a recipe keeps failing.
//!
//! What the sweeps said is kept in `<state dir>/sweeps.json` (written whole, atomically), so the
//! time of the last successful sweep survives a restart of the listener. Besides the sweeps'
//! series, [`behind_seconds`] says per recipe how long a release newer than its canonical has been
//! known (from the journal's jobs): the "canonical behind upstream" alert reads it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use canon_shared::listener_api::SweepOutcome;
use canon_shared::version::{Precedence, ReleaseVersion};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;

use crate::routes::{badge, reply_json, AppState, Reply};

/// The file the sweeps' record is kept in, under the state directory.
pub const RECORD_FILE: &str = "sweeps.json";
/// How many of a recipe's newest jobs are looked at for [`behind_seconds`].
const JOBS_LOOKED_AT: u32 = 50;

/// The last sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastSweep {
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When its report arrived, in Unix seconds.
    pub reported_at: f64,
    /// How long it took, in seconds.
    pub seconds: f64,
    /// True when it was a dry run.
    pub dry_run: bool,
    /// True when every recipe was ok (and it was no dry run).
    pub succeeded: bool,
}

/// One recipe across sweeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipeRuns {
    /// Whether the last sweep was ok for it.
    pub ok: bool,
    /// How many sweeps in a row it was not ok (0 after an ok one).
    pub red_streak: u32,
}

/// Everything the sweeps reported, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepState {
    /// The newest report.
    pub last: Option<LastSweep>,
    /// When the newest successful sweep reported, in Unix seconds.
    pub last_success_at: Option<f64>,
    /// Per recipe.
    pub recipes: BTreeMap<String, RecipeRuns>,
}

impl SweepState {
    /// Returns the state after `outcome` arrived at `now` (Unix seconds).
    pub fn after(mut self, outcome: &SweepOutcome, now: f64) -> Self {
        let succeeded = outcome.succeeded();
        self.last = Some(LastSweep {
            started_at: outcome.started_at.clone(),
            reported_at: now,
            seconds: outcome.seconds,
            dry_run: outcome.dry_run,
            succeeded,
        });
        if succeeded {
            self.last_success_at = Some(now);
        }
        // A dry run decides nothing: it changes no recipe's streak.
        if !outcome.dry_run {
            for r in &outcome.recipes {
                let runs = self.recipes.entry(r.recipe.to_string()).or_default();
                runs.ok = r.ok;
                runs.red_streak = if r.ok { 0 } else { runs.red_streak + 1 };
            }
        }
        self
    }

    /// Appends the sweep series to `out` (Prometheus text).
    pub fn render(&self, out: &mut String) {
        let gauge = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        };
        gauge(
            out,
            "canon_sweep_last_timestamp_seconds",
            "When the last sweep reported (Unix seconds); absent before the first.",
        );
        gauge(
            out,
            "canon_sweep_last_duration_seconds",
            "How long the last sweep took.",
        );
        gauge(
            out,
            "canon_sweep_last_success",
            "1 when the last sweep was ok for every recipe (and no dry run), else 0.",
        );
        if let Some(last) = &self.last {
            let _ = writeln!(
                out,
                "canon_sweep_last_timestamp_seconds {:.3}\ncanon_sweep_last_duration_seconds {:.3}\ncanon_sweep_last_success {}",
                last.reported_at,
                last.seconds,
                u8::from(last.succeeded)
            );
        }
        gauge(
            out,
            "canon_sweep_last_success_timestamp_seconds",
            "When the last successful sweep reported (Unix seconds); absent before the first.",
        );
        if let Some(at) = self.last_success_at {
            let _ = writeln!(out, "canon_sweep_last_success_timestamp_seconds {at:.3}");
        }
        gauge(
            out,
            "canon_sweep_recipe_ok",
            "1 when the last sweep was ok for the recipe, else 0.",
        );
        for (recipe, runs) in &self.recipes {
            // Recipe names are [a-z0-9_-], safe inside a label value.
            let _ = writeln!(
                out,
                "canon_sweep_recipe_ok{{recipe=\"{recipe}\"}} {}",
                u8::from(runs.ok)
            );
        }
        gauge(
            out,
            "canon_sweep_recipe_red_streak",
            "How many sweeps in a row were not ok for the recipe.",
        );
        for (recipe, runs) in &self.recipes {
            let _ = writeln!(
                out,
                "canon_sweep_recipe_red_streak{{recipe=\"{recipe}\"}} {}",
                runs.red_streak
            );
        }
    }
}

/// The sweeps' record: in memory, and in [`RECORD_FILE`] once the state dir is known.
#[derive(Debug, Default)]
pub struct SweepRecord {
    state: Mutex<Option<SweepState>>,
}

impl SweepRecord {
    /// Returns the record, reading it from `dir` the first time (a missing or unreadable file is
    /// an empty record; unreadable is logged).
    pub fn get(&self, dir: &Path) -> SweepState {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        guard.get_or_insert_with(|| load(dir)).clone()
    }

    /// Applies `outcome` and stores the result in `dir`.
    pub fn record(
        &self,
        dir: &Path,
        outcome: &SweepOutcome,
        now: f64,
    ) -> Result<(), canon_shared::state::StateError> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let next = guard
            .take()
            .unwrap_or_else(|| load(dir))
            .after(outcome, now);
        let stored = serde_json::to_vec_pretty(&next).unwrap_or_default();
        let written = canon_shared::state::write_atomic(dir, &record_path(dir), &stored);
        *guard = Some(next);
        written
    }
}

fn record_path(dir: &Path) -> PathBuf {
    dir.join(RECORD_FILE)
}

fn load(dir: &Path) -> SweepState {
    match canon_shared::bounded_read::read(
        &record_path(dir),
        canon_shared::bounded_read::RECORD_FILE,
    ) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "The sweeps' record is unreadable; starting afresh.");
            SweepState::default()
        }),
        Err(_) => SweepState::default(),
    }
}

/// `POST /api/sweeps`: records a finished sweep; 204, or 400 for a body that is not a
/// [`SweepOutcome`].
pub async fn report(body: bytes::Bytes, state: Arc<AppState>) -> Result<Reply, warp::Rejection> {
    let outcome: SweepOutcome = match serde_json::from_slice(&body) {
        Ok(o) => o,
        Err(_) => {
            return Ok(reply_json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": "not a sweep outcome" }),
            ))
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9;
    match state.sweeps().record(state.state.root(), &outcome, now) {
        Ok(()) => {
            tracing::info!(
                succeeded = outcome.succeeded(),
                seconds = outcome.seconds,
                recipes = outcome.recipes.len(),
                "A sweep reported."
            );
            Ok(Box::new(StatusCode::NO_CONTENT))
        }
        Err(e) => {
            tracing::error!(error = %e, "Cannot store the sweep's report.");
            Ok(reply_json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({ "error": "cannot store the report" }),
            ))
        }
    }
}

/// Returns, per enrolled recipe, for how many seconds a release newer than its canonical has
/// been known (the oldest such job's age; every known release when there is no canonical yet),
/// or 0 when none is.
pub async fn behind_seconds(state: &AppState) -> Vec<(String, f64)> {
    let now = time::OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for r in &state.enrollment.recipes {
        let name = r.name.as_str().to_string();
        let canonical = match badge::facts(state, &r.name).await {
            Ok(known) => known.canonical.map(|c| c.version),
            Err(_) => continue,
        };
        let recipe = name.clone();
        let jobs = state
            .journal
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT tag, created_at FROM jobs WHERE recipe=?1 ORDER BY id DESC LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![recipe, JOBS_LOOKED_AT], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await
            .unwrap_or_default();
        let oldest = jobs
            .iter()
            .filter(|(tag, _)| {
                tag.parse::<ReleaseVersion>().is_ok_and(|v| {
                    canonical
                        .as_ref()
                        .is_none_or(|c| v.precedence(c) == Precedence::Newer)
                })
            })
            .filter_map(|(_, at)| {
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
            })
            .min();
        let seconds = oldest.map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0));
        out.push((name, seconds));
    }
    out
}

/// Appends the "behind upstream" series to `out`.
pub fn render_behind(out: &mut String, behind: &[(String, f64)]) {
    out.push_str("# HELP canon_canonical_behind_seconds How long a release newer than the recipe's canonical has been known (0: none is).\n# TYPE canon_canonical_behind_seconds gauge\n");
    for (recipe, seconds) in behind {
        let _ = writeln!(
            out,
            "canon_canonical_behind_seconds{{recipe=\"{recipe}\"}} {seconds:.3}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canon_shared::listener_api::SweepRecipeOutcome;
    use canon_shared::recipe::RecipeName;

    fn outcome(dry_run: bool, oks: &[(&str, bool)]) -> SweepOutcome {
        SweepOutcome {
            started_at: "2026-12-06T03:00:00Z".into(),
            seconds: 12.5,
            dry_run,
            recipes: oks
                .iter()
                .map(|(r, ok)| SweepRecipeOutcome {
                    recipe: RecipeName::parse(r).unwrap(),
                    ok: *ok,
                })
                .collect(),
        }
    }

    #[test]
    fn a_red_streak_grows_until_an_ok_sweep_and_a_dry_run_changes_nothing() {
        let s = SweepState::default()
            .after(&outcome(false, &[("a", false), ("b", true)]), 100.0)
            .after(&outcome(false, &[("a", false), ("b", true)]), 200.0);
        assert_eq!(s.recipes["a"].red_streak, 2);
        assert_eq!(s.last_success_at, None);
        let s = s.after(&outcome(true, &[("a", true), ("b", true)]), 250.0);
        assert_eq!(s.recipes["a"].red_streak, 2, "a dry run decides nothing");
        assert_eq!(s.last_success_at, None, "a dry run is no successful sweep");
        let s = s.after(&outcome(false, &[("a", true), ("b", true)]), 300.0);
        assert_eq!(s.recipes["a"].red_streak, 0);
        assert_eq!(s.last_success_at, Some(300.0));
        let mut text = String::new();
        s.render(&mut text);
        assert!(text.contains("canon_sweep_last_success_timestamp_seconds 300.000"));
        assert!(text.contains("canon_sweep_last_duration_seconds 12.500"));
        assert!(text.contains("canon_sweep_recipe_red_streak{recipe=\"a\"} 0"));
        assert!(text.contains("canon_sweep_recipe_ok{recipe=\"b\"} 1"));
    }

    #[test]
    fn before_any_sweep_the_times_are_absent_not_zero() {
        let mut text = String::new();
        SweepState::default().render(&mut text);
        assert!(!text
            .lines()
            .any(|l| l.starts_with("canon_sweep_last_success_timestamp_seconds ")));
        assert!(text.contains("# TYPE canon_sweep_last_success_timestamp_seconds gauge"));
    }

    #[test]
    fn the_record_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let record = SweepRecord::default();
        record
            .record(dir.path(), &outcome(false, &[("a", true)]), 42.0)
            .unwrap();
        let again = SweepRecord::default();
        assert_eq!(again.get(dir.path()).last_success_at, Some(42.0));
    }
}
