//! Step 4, promote: under the recipe's lock, the gate over the run's facts, the runner's promote
//! step (the warm deploy), and the decision written against the state it goes over.
//!
//! Separate because it is the only step that changes the canonical; the order below makes a
//! crash at any point repairable (see `runners::docker::promote`).

use canon_shared::commit::CommitId;
use canon_shared::gate::{self, GateDecision, RunFacts};
use canon_shared::state::holds::{Hold, Holder, WarmHolds};
use canon_shared::state::{self, CanonicalRecord, Change, LockWait, StateError, StateStore};

use super::prepare::Ready;
use super::run::Ran;
use super::verify::upstream_tag_commit;
use super::{history_entry, tested_text, RunError, RunSettings, Stopped};
use crate::exit::error_chain;
use crate::report::{Decision, GateReport};
use crate::runners::{RunContext, Runner};

/// What the promote step established.
#[derive(Debug)]
pub(super) struct Promoted {
    /// The decision written to the history, with every reason.
    pub(super) gate: GateReport,
    /// The canonical this run wrote (`None`: it wrote none).
    pub(super) written: Option<CanonicalRecord>,
    /// The canonical the decision was taken against (after a lost race, the one the deciding
    /// attempt saw, not the one the run started from).
    pub(super) before: Option<CanonicalRecord>,
    /// The canonical after the decision.
    pub(super) after: Option<CanonicalRecord>,
    /// Why the promote step failed: the run is refused and exits 1.
    pub(super) failed: Option<String>,
}

/// The facts the gate decides over, all but the canonical, which it is asked about twice: once
/// under the lock, and again against the state the decision is written over.
struct Facts<'a> {
    settings: &'a RunSettings,
    ctx: &'a RunContext,
    ran: &'a Ran,
    tested_commit: CommitId,
    tag_commit_now: Option<CommitId>,
}

impl Facts<'_> {
    fn gate(&self, canonical: Option<&CanonicalRecord>) -> GateDecision {
        gate::promote_gate(&RunFacts {
            recipe: Some(&self.ctx.recipe),
            cold: !self.ctx.quick && self.ctx.warm.is_none(),
            quick: self.ctx.quick,
            tested: self.ctx.tested.clone(),
            tested_commit: self.tested_commit.clone(),
            tag_commit_now: self.tag_commit_now.clone(),
            stages: &self.ran.stages,
            canonical,
            problems: &self.ran.problems,
        })
    }

    /// Returns the decision written over `current` (the canonical as the store has it) and the
    /// canonical it writes. A failed promote step refuses; a gate that did not promote stands;
    /// after a promote step that ran, the gate decides again over `current`, where another host
    /// may have decided first.
    fn decide_over(
        &self,
        current: Option<&CanonicalRecord>,
        first: &GateDecision,
        failed: Option<&str>,
        warm_host: &Option<String>,
    ) -> (GateReport, Option<CanonicalRecord>) {
        if let Some(why) = failed {
            return (GateReport::refuse(vec![why.to_string()]), None);
        }
        let again = self.gate(current);
        if !matches!(first, GateDecision::Promote { .. }) {
            // A refusal stands (no promote step ran); taken again over `current`, its reasons
            // name the canonical it is written over. The canonical only moves forward, so a
            // gate that refused does not allow now; should it, the first refusal stands.
            return match again {
                GateDecision::Promote { .. } => (GateReport::from(first), None),
                _ => (GateReport::from(&again), None),
            };
        }
        let record = match &again {
            GateDecision::Promote { version, commit } => Some(CanonicalRecord {
                recipe: self.settings.recipe.name.clone(),
                version: version.clone(),
                commit: commit.clone(),
                promoted_at: state::now(),
                build: Some(self.settings.build_ref()),
                pinned: None,
                host: warm_host.clone(),
            }),
            _ => None,
        };
        (GateReport::from(&again), record)
    }
}

/// Takes the lock, runs the gate and the runner's promote step, and writes the decision (and,
/// when it promotes, the canonical).
pub(super) fn promote(
    settings: &RunSettings,
    runner: &dyn Runner,
    state: &dyn StateStore,
    ready: &Ready,
    ran: &Ran,
) -> Result<Promoted, Stopped> {
    let ctx = &ready.ctx;
    let name = settings.recipe.name.to_string();
    let state_err = |source: StateError| RunError::State {
        recipe: name.clone(),
        source,
    };
    tracing::debug!(recipe = %name, "Taking the recipe lock for the gate.");
    let lock = state
        .lock(&settings.recipe.name, settings.lock_wait)
        .map_err(state_err)?;
    // Read again under the lock: another run may have promoted while this one ran.
    let canonical = state
        .read_canonical(&settings.recipe.name)
        .map_err(state_err)?;
    let facts = Facts {
        settings,
        ctx,
        ran,
        tested_commit: ctx.commit.clone(),
        tag_commit_now: tag_commit_now(settings),
    };
    let first = facts.gate(canonical.as_ref());
    let promoting = matches!(first, GateDecision::Promote { .. });
    let (hold, mut failed) = hold_warm_data(settings, runner, ctx, canonical.as_ref(), promoting);
    // The warm deploy comes before the record says so; a promote step that fails is a refusal.
    if let (GateDecision::Promote { version, .. }, None) = (&first, &failed) {
        tracing::info!(recipe = %name, version = %version, "The gate allows the promotion; running the promote step.");
        if let Err(e) = runner.promote(ctx) {
            failed = Some(format!("the promote step failed: {e}"));
        }
    }
    let promote_ran = promoting && failed.is_none();
    // The node the promote left the warm data on moves with the canonical.
    let warm_host = if promote_ran {
        runner.warm_host()
    } else {
        None
    };
    // The decision is written against the state it goes over: the gate runs again there (in a
    // state repository another host may have decided first). Only a run whose promote step ran
    // can promote.
    let mut decided: Option<(GateReport, bool)> = None;
    let committed = state.commit(&lock, &mut |current| {
        let (gate, record) = facts.decide_over(current, &first, failed.as_deref(), &warm_host);
        let history = vec![history_entry(
            settings,
            Some(&ctx.commit),
            &gate,
            current.map(|c| c.version.to_string()),
        )];
        decided = Some((gate, record.is_some()));
        Ok(Change {
            canonical: record,
            history,
        })
    });
    let committed = match committed {
        Ok(c) => c,
        Err(e) => {
            // Nothing was written: the warm data goes back to the canonical it was.
            if promote_ran {
                if let Err(se) = runner.settle_promote(ctx, canonical.as_ref()) {
                    tracing::error!(recipe = %name, error = %se, "Cannot put the warm data back; the next run does.");
                }
            }
            return Err(Stopped {
                error: Box::new(state_err(e)),
                decided_promotion: decided.is_some_and(|(_, p)| p),
            });
        }
    };
    canon_shared::fault::point("promote:canonical");
    canon_shared::fault::point("promote:history");
    // Every store takes the decision before it writes; the first gate stands in for one that
    // did not, which writes nothing.
    let gate = decided.map_or_else(|| GateReport::from(&first), |(gate, _)| gate);
    let written = committed.change.canonical;
    let before = committed.before;
    let after = written.clone().or_else(|| before.clone());
    // The warm deploy was healthy, then the canonical and its history line were written, now
    // the known-good copies go (or, when another host won the race, the warm data goes back to
    // the canonical).
    if promote_ran {
        if let Err(e) = runner.settle_promote(ctx, after.as_ref()) {
            tracing::warn!(recipe = %name, error = %e, "Cannot settle the warm data; the next run does.");
        }
    }
    announce(&name, written.as_ref(), after.as_ref(), &gate, ran.green);
    drop(hold);
    drop(lock);
    Ok(Promoted {
        gate,
        written,
        before,
        after,
        failed,
    })
}

/// Returns the commit the tag peels to upstream now, for the gate (`None` for a ref, or when
/// upstream cannot say: the gate then refuses).
fn tag_commit_now(settings: &RunSettings) -> Option<CommitId> {
    let canon_shared::gate::TestedRef::Tag(tag) = &settings.tested else {
        return None;
    };
    let name = &settings.recipe.name;
    match upstream_tag_commit(settings, tag) {
        Ok(c) => {
            tracing::debug!(recipe = %name, tag, commit = %c, "Resolved the tag upstream again for the gate.");
            Some(c)
        }
        Err(e) => {
            tracing::warn!(recipe = %name, error = %error_chain(&e), "Cannot resolve the tag again for the gate.");
            None
        }
    }
}

/// Takes the exclusive hold on the warm data, which changes only under it and which waits for
/// warm runs still copying it: a promote waits up to `lock_wait`; a mere repair does not wait.
/// With the hold, a promote killed half-way is finished or rolled back first, so the warm data
/// matches the canonical whatever this run decides. Returns the hold, and why the promote step
/// cannot run.
fn hold_warm_data(
    settings: &RunSettings,
    runner: &dyn Runner,
    ctx: &RunContext,
    canonical: Option<&CanonicalRecord>,
    promoting: bool,
) -> (Result<Hold, StateError>, Option<String>) {
    let name = &settings.recipe.name;
    let holder = Holder {
        build: settings.build.clone(),
        what: format!("promote of {}", tested_text(&settings.tested)),
    };
    let wait = if promoting {
        settings.lock_wait
    } else {
        LockWait::Fail
    };
    let hold = WarmHolds::new(&settings.state_dir, name).promote(&holder, wait);
    let failed = match &hold {
        Ok(_) => {
            if let Err(e) = runner.settle_promote(ctx, canonical) {
                tracing::warn!(recipe = %name, error = %e, "Cannot settle an earlier promote.");
            }
            None
        }
        Err(e) if promoting => Some(format!(
            "the promote step could not hold the warm data: {e}"
        )),
        Err(e) => {
            tracing::info!(recipe = %name, error = %e, "Warm runs are copying the warm data; an unsettled promote is left to the next run.");
            None
        }
    };
    (hold, failed)
}

/// Prints what the decision did: the promotion, nothing to promote, or (in the log) a green run
/// the gate refused.
fn announce(
    name: &str,
    written: Option<&CanonicalRecord>,
    after: Option<&CanonicalRecord>,
    gate: &GateReport,
    green: bool,
) {
    match (written, gate.decision) {
        (Some(record), _) => canon_shared::outln!(
            "canon: PROMOTED {name} to {} (commit {})",
            record.version,
            record.commit
        ),
        (None, Decision::NotNeeded) => canon_shared::outln!(
            "canon: nothing to promote: {} is already the canonical of {name} at this commit",
            after.map(|c| c.version.to_string()).unwrap_or_default()
        ),
        _ => {
            if green {
                tracing::warn!(recipe = %name, reasons = ?gate.reasons, "The run is green but the gate refused the promotion.");
            }
        }
    }
}
