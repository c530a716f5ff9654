//! Step 3, run: the runner climbs the stage ladder on the prepared context, and canon reads the
//! verdict off its stages: green when every required stage passed and nothing else is wrong.
//!
//! Separate because it is the only step that hands control to a runner; the verdict is canon's,
//! never the runner's.

use canon_shared::gate::{self, StageResult};
use canon_shared::recipe::Stage;

use super::prepare::Ready;
use super::tested_text;
use crate::report;
use crate::runners::ladder::RestoreProof;
use crate::runners::warm::WarmReport;
use crate::runners::Runner;

/// What the run step established.
#[derive(Debug)]
pub(super) struct Ran {
    /// Every stage the runner reported.
    pub(super) stages: Vec<StageResult>,
    /// For a warm run: what it copied.
    pub(super) warm: Option<WarmReport>,
    /// What the restore proved, when it passed.
    pub(super) restore_proof: Option<RestoreProof>,
    /// Every problem besides the stages: the release check's, then the runner's failure.
    pub(super) problems: Vec<String>,
    /// canon's verdict: every required stage passed, none failed, and no problem.
    pub(super) green: bool,
}

/// Runs the ladder through `runner` unless the release check found a problem, printing each
/// stage, and returns the verdict.
pub(super) fn run(runner: &dyn Runner, ready: &Ready) -> Ran {
    let ctx = &ready.ctx;
    let mut problems = ready.problems.clone();
    let mut stages = Vec::new();
    let mut warm = None;
    let mut restore_proof = None;
    if problems.is_empty() {
        let tested = tested_text(&ctx.tested);
        match &ctx.warm {
            Some(w) => canon_shared::outln!(
                "canon: running {} at {tested} (commit {}) with the {} runner, warm: upgrading from the canonical {}'s data ({} volumes)",
                ctx.recipe.name,
                ctx.commit,
                runner.name(),
                w.canonical.version,
                w.volumes.len()
            ),
            None => canon_shared::outln!(
                "canon: running {} at {tested} (commit {}) with the {} runner",
                ctx.recipe.name,
                ctx.commit,
                runner.name()
            ),
        }
        match runner.run(ctx) {
            Ok(output) => {
                stages = output.stages;
                warm = output.warm;
                restore_proof = output.restore_proof;
            }
            Err(e) => {
                stages = e.stages().to_vec();
                problems.push(format!("the {} runner failed: {e}", runner.name()));
            }
        }
        // A runner that failed before its copy still lets go of the warm data.
        if let Some(w) = &ctx.warm {
            w.release();
        }
        for s in &stages {
            canon_shared::outln!("{}", report::stage_line(s));
        }
    } else {
        for p in &problems {
            canon_shared::outln!("canon: not running: {p}");
        }
    }
    let mut required = gate::required_stages(&ctx.recipe, ctx.canonical.is_some());
    if ctx.warm.is_some() {
        // A warm run reattaches the canonical's data in place of the install.
        required.retain(|s| *s != Stage::Install);
    }
    let green = problems.is_empty() && gate::is_green(&stages, &required);
    Ran {
        stages,
        warm,
        restore_proof,
        problems,
        green,
    }
}
