//! What a tag-mode run tells people: the step log (each stage, the final table, the gate's
//! decision with every reason) and the JSON report file.
//!
//! The report carries no secret: settings are not copied into it, URLs are not in it, and error
//! texts come from errors that already strip tokens.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use canon_shared::commit::CommitId;
use canon_shared::gate::{GateDecision, StageResult, StageStatus};
use canon_shared::state::{CanonicalRecord, StateError};
use serde::{Deserialize, Serialize};

use crate::runners::ladder::RestoreProof;
use crate::runners::warm::WarmReport;

/// The canonical as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanonicalSummary {
    /// The canonical release tag.
    pub version: String,
    /// Its tested commit.
    pub commit: CommitId,
    /// True while pinned.
    pub pinned: bool,
}

impl From<&CanonicalRecord> for CanonicalSummary {
    fn from(r: &CanonicalRecord) -> Self {
        Self {
            version: r.version.to_string(),
            commit: r.commit.clone(),
            pinned: r.pinned.is_some(),
        }
    }
}

/// What the gate decided, as the report, the log and the history name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// `promote`: the canonical moves to the tested tag.
    Promote,
    /// `not-needed`: the tag is already the canonical at this commit.
    NotNeeded,
    /// `refuse`: a check failed, the run stopped, or the promote step failed.
    Refuse,
}

impl Decision {
    /// Returns the decision's name: `promote`, `not-needed` or `refuse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Promote => "promote",
            Decision::NotNeeded => "not-needed",
            Decision::Refuse => "refuse",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gate's decision as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateReport {
    /// `promote`, `refuse` or `not-needed`.
    pub decision: Decision,
    /// Every reason (for `refuse`: every failing check; empty for `promote`).
    pub reasons: Vec<String>,
}

impl GateReport {
    /// Returns a refusal for `reasons`, none of them the gate's own (the run stopped, or the
    /// promote step failed).
    pub fn refuse(reasons: Vec<String>) -> Self {
        Self {
            decision: Decision::Refuse,
            reasons,
        }
    }
}

impl From<&GateDecision> for GateReport {
    fn from(gate: &GateDecision) -> Self {
        Self {
            decision: match gate {
                GateDecision::Promote { .. } => Decision::Promote,
                GateDecision::NotNeeded { .. } => Decision::NotNeeded,
                GateDecision::Refuse { .. } => Decision::Refuse,
            },
            reasons: gate.reasons(),
        }
    }
}

/// The JSON report of one tag-mode run (`--report`, default `canon-report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The recipe.
    pub recipe: String,
    /// The tag under test (`null` for a ref run).
    pub tag: Option<String>,
    /// The ref under test (`null` for a tag run).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// The commit under test (`null` when the run stopped before it was known).
    pub commit: Option<CommitId>,
    /// The build number or local run id.
    pub build: String,
    /// A link to the build.
    pub build_link: Option<String>,
    /// What started the run (`tag`, `custom`, `cli`, `sweep`, ...).
    pub trigger: String,
    /// The runner.
    pub runner: String,
    /// True for a `--quick` run.
    pub quick: bool,
    /// For a warm run: the canonical it started from and the volumes it copied (`null` for a
    /// cold run).
    pub warm: Option<WarmReport>,
    /// For a ref run that runs cold: why it could not start from the canonical's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_because: Option<String>,
    /// Every stage the runner reported.
    pub stages: Vec<StageResult>,
    /// What a passed restore proved: `app-data` (the enrollment's `data_check` verified the app's
    /// own data after it) or `files` (the restored volumes' files only); absent when no restore
    /// passed or the runner does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_proof: Option<RestoreProof>,
    /// canon's verdict: every required stage passed, none failed, and no problem below.
    pub green: bool,
    /// Why the run is red besides its stages (label mismatch, runner failure, verification).
    pub problems: Vec<String>,
    /// The gate's decision.
    pub gate: GateReport,
    /// True when the canonical was written by this run.
    pub promoted: bool,
    /// The canonical before the run.
    pub canonical_before: Option<CanonicalSummary>,
    /// The canonical after the run.
    pub canonical_after: Option<CanonicalSummary>,
    /// An error that stopped the run, if any.
    pub error: Option<String>,
    /// The process exit code this run maps to (0 green, 1 red or refused verification).
    pub exit_code: u8,
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    /// How long it took.
    pub seconds: f64,
}

/// Returns a duration in seconds as the log shows it (`41.2s`, `3m 05s`).
pub fn seconds_text(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let whole = s.round() as u64;
        format!("{}m {:02}s", whole / 60, whole % 60)
    }
}

fn status_mark(status: StageStatus) -> &'static str {
    match status {
        StageStatus::Passed => "PASSED ",
        StageStatus::Failed => "FAILED ",
        StageStatus::Skipped => "SKIPPED",
    }
}

/// Returns one stage's log line: name, status, duration, reason.
pub fn stage_line(s: &StageResult) -> String {
    let mut line = format!(
        "stage {:<8} {} {:>8}",
        s.name.as_str(),
        status_mark(s.status),
        seconds_text(s.seconds)
    );
    if let Some(r) = &s.reason {
        let _ = write!(line, "  {r}");
    }
    for n in &s.notes {
        let _ = write!(line, "  [{n}]");
    }
    line
}

impl Report {
    /// Returns the tested tag or ref as `tag X` / `ref Y`.
    pub fn tested_text(&self) -> String {
        match (&self.tag, &self.git_ref) {
            (Some(t), _) => format!("tag {t}"),
            (None, Some(r)) => format!("ref {r}"),
            (None, None) => "nothing".into(),
        }
    }

    /// Renders the final summary: the stage table, the verdict, the gate and every reason.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let bar = "=".repeat(72);
        let _ = writeln!(out, "{bar}");
        let _ = writeln!(
            out,
            "canon: {} at {} (commit {})",
            self.recipe,
            self.tested_text(),
            self.commit.as_deref().unwrap_or("unknown")
        );
        let _ = writeln!(out, "{:<10} {:<8} {:>9}  reason", "stage", "status", "time");
        let _ = writeln!(out, "{:-<10} {:-<8} {:->9}  {:-<6}", "", "", "", "");
        if self.stages.is_empty() {
            let _ = writeln!(out, "(no stage ran)");
        }
        for s in &self.stages {
            let _ = writeln!(
                out,
                "{:<10} {:<8} {:>9}  {}",
                s.name.as_str(),
                s.status.to_string(),
                seconds_text(s.seconds),
                s.reason.as_deref().unwrap_or("")
            );
            for n in &s.notes {
                let _ = writeln!(out, "{:<10} {:<8} {:>9}  note: {n}", "", "", "");
            }
        }
        for p in &self.problems {
            let _ = writeln!(out, "problem: {p}");
        }
        let kind = match (&self.warm, self.quick) {
            (_, true) => "quick run",
            (Some(_), false) => "warm run",
            (None, false) => "cold run",
        };
        let _ = writeln!(
            out,
            "verdict: {} ({kind} in {})",
            if self.green { "GREEN" } else { "RED" },
            seconds_text(self.seconds)
        );
        if let Some(why) = &self.cold_because {
            let _ = writeln!(out, "cold because: {why}");
        }
        let _ = writeln!(out, "gate: {}", self.gate.decision);
        for r in &self.gate.reasons {
            let _ = writeln!(out, "  - {r}");
        }
        let canon = |c: &Option<CanonicalSummary>| match c {
            Some(c) => format!(
                "{} ({}){}",
                c.version,
                short(&c.commit),
                if c.pinned { ", pinned" } else { "" }
            ),
            None => "none".into(),
        };
        let _ = writeln!(out, "canonical before: {}", canon(&self.canonical_before));
        let _ = writeln!(out, "canonical after:  {}", canon(&self.canonical_after));
        if let Some(e) = &self.error {
            let _ = writeln!(out, "error: {e}");
        }
        let _ = writeln!(out, "{bar}");
        if let Some(warm) = &self.warm {
            // A warm run never promotes; what it proves is the upgrade over real data.
            let _ = writeln!(
                out,
                "canon: upgrade from canonical {} with its data: {}",
                warm.canonical,
                if self.green { "passed" } else { "failed" }
            );
        } else if self.green && self.gate.decision == Decision::Refuse {
            let _ = writeln!(out, "{}", refused_banner(self));
        }
        out
    }

    /// Writes the report as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<(), StateError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|source| StateError::Io {
            path: dir.clone(),
            action: "create the report folder",
            source,
        })?;
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| StateError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        canon_shared::state::write_atomic(&dir, path, &bytes)
    }
}

/// The block printed when a green run's promotion was refused: exit 0, but never unnoticed.
pub fn refused_banner(r: &Report) -> String {
    let bang = "!".repeat(72);
    let mut out = format!(
        "{bang}\n!! GREEN BUT NOT PROMOTED: the gate refused {} for {}\n",
        r.tested_text(),
        r.recipe
    );
    for reason in &r.gate.reasons {
        let _ = writeln!(out, "!!   - {reason}");
    }
    out.push_str(&bang);
    out
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canon_shared::recipe::Stage;

    fn report() -> Report {
        Report {
            recipe: "app".into(),
            tag: Some("1.0.0+1".into()),
            git_ref: None,
            commit: Some("a".repeat(40).parse().unwrap()),
            build: "7".into(),
            build_link: None,
            trigger: "cli".into(),
            runner: "command".into(),
            quick: false,
            warm: None,
            cold_because: None,
            stages: vec![StageResult {
                name: Stage::Install,
                status: StageStatus::Passed,
                reason: None,
                seconds: 41.25,
                notes: Vec::new(),
                serving: None,
            }],
            restore_proof: None,
            green: true,
            problems: vec![],
            gate: GateReport::refuse(vec!["the recipe is pinned by ops: migration".into()]),
            promoted: false,
            canonical_before: None,
            canonical_after: None,
            error: None,
            exit_code: 0,
            started_at: "2026-01-01T00:00:00Z".into(),
            seconds: 125.0,
        }
    }

    #[test]
    fn a_green_refused_run_prints_a_banner_with_every_reason() {
        let text = report().summary();
        assert!(text.contains("install    passed       41.2s"), "{text}");
        assert!(
            text.contains("verdict: GREEN (cold run in 2m 05s)"),
            "{text}"
        );
        assert!(text.contains("!! GREEN BUT NOT PROMOTED: the gate refused tag 1.0.0+1 for app"));
        assert!(text.contains("!!   - the recipe is pinned by ops: migration"));
    }

    #[test]
    fn the_json_uses_the_documented_field_names() {
        let json = serde_json::to_value(report()).unwrap();
        for key in [
            "recipe",
            "tag",
            "ref",
            "commit",
            "stages",
            "green",
            "gate",
            "canonical_before",
            "canonical_after",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["gate"]["decision"], "refuse");
        let back: Report = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.gate.decision, Decision::Refuse);
        assert_eq!(json["stages"][0]["status"], "passed");
    }

    #[test]
    fn the_restore_proof_is_named_as_documented_and_absent_when_no_restore_passed() {
        assert!(serde_json::to_value(report())
            .unwrap()
            .get("restore_proof")
            .is_none());
        for (proof, name) in [
            (RestoreProof::AppData, "app-data"),
            (RestoreProof::Files, "files"),
        ] {
            let r = Report {
                restore_proof: Some(proof),
                ..report()
            };
            let json = serde_json::to_value(&r).unwrap();
            assert_eq!(json["restore_proof"], name);
            let back: Report = serde_json::from_value(json).unwrap();
            assert_eq!(back.restore_proof, Some(proof));
        }
    }

    #[test]
    fn each_decision_serialises_as_its_name() {
        for (decision, name) in [
            (Decision::Promote, "promote"),
            (Decision::NotNeeded, "not-needed"),
            (Decision::Refuse, "refuse"),
        ] {
            assert_eq!(serde_json::to_value(decision).unwrap(), name);
            assert_eq!(decision.to_string(), name);
        }
    }

    #[test]
    fn stage_lines_show_status_time_and_reason() {
        let s = StageResult {
            name: Stage::Upgrade,
            status: StageStatus::Skipped,
            reason: Some("no canonical yet".into()),
            seconds: 0.0,
            notes: Vec::new(),
            serving: None,
        };
        assert_eq!(
            stage_line(&s),
            "stage upgrade  SKIPPED     0.0s  no canonical yet"
        );
    }

    #[test]
    fn the_deploy_timeout_note_shows_in_the_log_line_the_summary_and_the_json() {
        let s = StageResult {
            name: Stage::Install,
            status: StageStatus::Passed,
            reason: None,
            seconds: 12.0,
            notes: vec!["deploy timeout 300s (source: label)".into()],
            serving: None,
        };
        assert_eq!(
            stage_line(&s),
            "stage install  PASSED     12.0s  [deploy timeout 300s (source: label)]"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["notes"][0], "deploy timeout 300s (source: label)");
        let mut bare = s.clone();
        bare.notes.clear();
        assert!(serde_json::to_value(&bare).unwrap().get("notes").is_none());
        let r = Report {
            stages: vec![s],
            ..report()
        };
        assert!(r
            .summary()
            .contains("note: deploy timeout 300s (source: label)"));
    }
}
