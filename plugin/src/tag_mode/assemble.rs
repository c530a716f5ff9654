//! The report of a tag-mode run, assembled in one function from what the steps established.
//!
//! Separate so that no step writes the report: each returns its value, and a run that stopped
//! part-way is reported from the values it got to, with the error that stopped it.

use canon_shared::gate::TestedRef;

use super::promote::Promoted;
use super::{RunError, RunSettings, Stopped, Trail};
use crate::exit::{error_chain, EXIT_GREEN, EXIT_RED};
use crate::report::{CanonicalSummary, GateReport, Report};

/// Returns the report of the run `trail` and `end` describe; `seconds` is how long it took.
pub(super) fn report(
    settings: &RunSettings,
    runner: &str,
    trail: &Trail,
    end: &Result<Promoted, Stopped>,
    started_at: String,
    seconds: f64,
) -> Report {
    let (tag, git_ref) = match &settings.tested {
        TestedRef::Tag(t) => (Some(t.clone()), None),
        TestedRef::Ref(r) => (None, Some(r.clone())),
    };
    // The commit checked out, else the tag's upstream, else the one a refused claim named.
    let commit = match (&trail.ready, &trail.verified, end) {
        (Some(ready), _, _) => Some(ready.ctx.commit.clone()),
        (None, Some(verified), _) => verified.commit.clone(),
        (None, None, Err(stopped)) => match stopped.error.as_ref() {
            RunError::CommitMismatch { claimed, .. } => Some(claimed.clone()),
            _ => None,
        },
        (None, None, Ok(_)) => None,
    };
    let ran = trail.ran.as_ref();
    // The canonical the decision was taken against, once there is a decision: in a shared state
    // another run may have decided between this run's start and its gate.
    let canonical_before = match end {
        Ok(p) => p.before.as_ref(),
        Err(_) => trail.before.as_ref(),
    }
    .map(CanonicalSummary::from);
    let green = end.is_ok() && ran.is_some_and(|r| r.green);
    let (gate, promoted, canonical_after, error, exit_code) = match end {
        Ok(p) => (
            p.gate.clone(),
            p.written.is_some(),
            p.after.as_ref().map(CanonicalSummary::from),
            p.failed.clone(),
            if green && p.failed.is_none() {
                EXIT_GREEN
            } else {
                EXIT_RED
            },
        ),
        Err(stopped) => (
            GateReport::refuse(vec![stopped.error.to_string()]),
            stopped.decided_promotion,
            canonical_before.clone(),
            Some(error_chain(&stopped.error)),
            EXIT_RED,
        ),
    };
    Report {
        recipe: settings.recipe.name.to_string(),
        tag,
        git_ref,
        commit,
        build: settings.build.clone(),
        build_link: settings.build_link.clone(),
        trigger: settings.trigger.clone(),
        runner: runner.to_string(),
        quick: settings.quick,
        warm: ran.and_then(|r| r.warm.clone()),
        cold_because: trail.ready.as_ref().and_then(|r| r.cold_because.clone()),
        stages: ran.map(|r| r.stages.clone()).unwrap_or_default(),
        restore_proof: ran.and_then(|r| r.restore_proof),
        green,
        problems: ran.map(|r| r.problems.clone()).unwrap_or_default(),
        gate,
        promoted,
        canonical_before,
        canonical_after,
        error,
        exit_code,
        started_at,
        seconds,
    }
}
