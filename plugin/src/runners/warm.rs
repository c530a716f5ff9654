//! Warm runs: a pull request or branch run that starts from the canonical's data instead of a
//! fresh install.
//!
//! After a promote the canonical stays on its host undeployed, its volumes `warm-<recipe>_*`
//! kept. A warm run copies each of them into a volume of its own stack (copy-on-reattach: the
//! canonical's volumes are only ever read), deploys the head over the copies with the env the
//! canonical was installed with, then climbs the rest of the ladder. Its install stage is
//! skipped ("reattached the warm canonical ...") and it never promotes: it is not cold.
//!
//! Tag mode decides whether a run is warm ([`WarmBase`] in the run context) and says why not
//! when it is cold; the runner reports what it copied ([`WarmReport`]).
//!
//! What every runner that starts from the warm canonical needs is here too, so no runner reaches
//! into another: which of its volumes a warm run would copy ([`warm_volumes`]), the copying
//! itself ([`copy_volumes`], the docker runner's reattach), and copies made for a harness that
//! deploys over them ([`WarmCopies`], the command runner's warm runs). The copies go through the
//! engine ([`crate::engine`]); the image their helper containers use is read from the
//! canonical's checkout ([`crate::recipe`]).

use std::path::Path;
use std::sync::{Arc, Mutex};

use canon_shared::fault;
use canon_shared::gate::StageResult;
use canon_shared::recipe::RecipeName;
use canon_shared::state::holds::Hold;
use canon_shared::state::CanonicalRecord;
use serde::{Deserialize, Serialize};

use super::{RunContext, RunnerError};
use crate::engine::client::{inspect_json, list_ids};
use crate::engine::cmd::Kind;
use crate::engine::labels::{self, now_unix, RunLabels, StackKind};
use crate::engine::volumes::Helpers;
use crate::engine::{ensure_swarm, stacks};
use crate::recipe::files::RecipeFiles;
use crate::recipe::names::{self, DEFAULT_DOMAIN_SUFFIX};
use crate::recipe::plan;

/// The warm data a warm run starts from, held shared (no promote replaces it) until the runner
/// has copied it.
#[derive(Debug, Clone)]
pub struct WarmBase {
    /// The canonical whose data it is (read under the hold).
    pub canonical: CanonicalRecord,
    /// The canonical's warm volumes (`warm-<recipe>_<key>`), sorted, listed under the hold.
    pub volumes: Vec<String>,
    /// The shared hold on the recipe's warm data, until [`WarmBase::release`] (or the end of
    /// the run, or of the process).
    pub hold: Arc<Mutex<Option<Hold>>>,
}

impl WarmBase {
    /// Releases the hold on the warm data: the runner calls it once its copies are made.
    pub fn release(&self) {
        let hold = self.hold.lock().map(|mut h| h.take());
        drop(hold);
    }

    /// Returns the install stage's reason in a warm run.
    pub fn reattached(&self) -> String {
        format!(
            "reattached the warm canonical {} (promoted {})",
            self.canonical.version,
            self.canonical.promoted_at.date()
        )
    }
}

/// One warm volume copied into the run's stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmCopy {
    /// The canonical's volume.
    pub from: String,
    /// The run's copy.
    pub to: String,
    /// The size of the data copied, as the engine counts it.
    pub bytes: u64,
}

/// What a warm run started from, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmReport {
    /// The canonical's version.
    pub canonical: String,
    /// The canonical's commit.
    pub commit: canon_shared::commit::CommitId,
    /// Every volume copied.
    pub volumes: Vec<WarmCopy>,
}

impl WarmReport {
    /// Returns the report of copies made from `base`.
    pub fn new(base: &WarmBase, volumes: Vec<WarmCopy>) -> Self {
        WarmReport {
            canonical: base.canonical.version.to_string(),
            commit: base.canonical.commit.clone(),
            volumes,
        }
    }
}

/// What a passed restore stage proved, as the report names it (`restore_proof`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreProof {
    /// `app-data`: the enrollment's `data_check.verify` passed after the restore and the
    /// redeploy, so the app serves the state seeded before the backup again.
    AppData,
    /// `files`: the enrollment sets no `data_check`; the restored volumes hold the backup's files
    /// (the runner's markers and narrowed paths), which says nothing of what the app loaded.
    Files,
}

impl RestoreProof {
    /// Returns the note a passed restore stage carries.
    pub fn note(self) -> &'static str {
        match self {
            RestoreProof::AppData => {
                "restore proven on the app's data: data_check.verify passed after the restore"
            }
            RestoreProof::Files => {
                "restore proven at the file level only: the enrollment sets no data_check"
            }
        }
    }
}

/// What one run of a runner produced: the stage results and, for a warm run, what it started
/// from.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    /// One result per stage, in ladder order.
    pub stages: Vec<StageResult>,
    /// The warm data the run copied (warm runs only).
    pub warm: Option<WarmReport>,
    /// What a passed restore stage proved (`None` when none passed, or the runner does not say).
    pub restore_proof: Option<RestoreProof>,
}

impl From<Vec<StageResult>> for RunOutput {
    fn from(stages: Vec<StageResult>) -> Self {
        RunOutput {
            stages,
            warm: None,
            restore_proof: None,
        }
    }
}

/// Returns the warm canonical's volumes of `recipe` on this engine (sorted) that a warm run would
/// copy, or why a run cannot start from them: there are none, or a promote of them is not
/// settled (its marker or a `.prev` copy is still there).
pub fn warm_volumes(recipe: &RecipeName) -> Result<Vec<String>, String> {
    ensure_swarm().map_err(|e| e.to_string())?;
    let stack = names::warm_stack_name(recipe.as_str());
    let marker = labels::promoting_marker(&stack);
    let unsettled =
        inspect_json(Kind::Volume, std::slice::from_ref(&marker)).map_err(|e| e.to_string())?;
    let all = list_ids(Kind::Volume, &stacks::stack_filter(&stack)).map_err(|e| e.to_string())?;
    if !unsettled.is_empty() || all.iter().any(|v| v.ends_with(".prev")) {
        return Err(format!(
            "a promote of the warm canonical {stack} is not settled on this host"
        ));
    }
    let mut volumes: Vec<String> = all
        .into_iter()
        .filter(|v| v.starts_with(&format!("{stack}_")))
        .collect();
    volumes.sort();
    if volumes.is_empty() {
        return Err(format!(
            "the warm canonical {stack} has no volumes on this host"
        ));
    }
    Ok(volumes)
}

/// Copies each of the warm canonical's volumes `warm-<recipe>_<key>` into the run stack's volume
/// of the same key (`<labels.stack>_<key>`, labelled `labels`), through `helpers` with the image
/// `image`, while the run holds the recipe's warm data shared (tag mode took the hold; it is
/// released here once the copies are made). The canonical's volumes are only read. Returns the
/// copies.
pub fn copy_volumes(
    warm: &WarmBase,
    labels: &RunLabels,
    helpers: &Helpers,
    image: &str,
) -> Result<Vec<WarmCopy>, RunnerError> {
    let source = names::warm_stack_name(&labels.recipe);
    let volume_labels = labels.map(None);
    let mut copies = Vec::with_capacity(warm.volumes.len());
    for from in warm.volumes.iter().cloned() {
        let key = from
            .strip_prefix(&format!("{source}_"))
            .unwrap_or(&from)
            .to_string();
        let to = labels::stack_volume(&labels.stack, &key);
        let bytes = helpers.copy_volume(&from, &to, image, &volume_labels)?;
        tracing::info!(%from, %to, bytes, "Copied a warm volume.");
        copies.push(WarmCopy { from, to, bytes });
        fault::point("warm:copied");
    }
    warm.release();
    Ok(copies)
}

/// Returns the image the helper containers of a stack deploying `files` use: the first image a
/// service names.
pub fn helper_image(files: &RecipeFiles) -> Result<String, RunnerError> {
    files
        .facts
        .first_image()
        .ok_or_else(|| RunnerError::Other("no service names an image".into()))
}

/// A warm run's copies of the warm canonical's volumes, made for a harness that deploys over them
/// (the `command` runner): named `<run stack>_<key>` after the cold stack the run would deploy,
/// labelled as that stack's own. Dropping it removes them (and the sweep's cleanup does, if the
/// process dies first).
pub struct WarmCopies {
    /// The run's stack, whose objects the copies are.
    stack: String,
    /// What was copied.
    pub copies: Vec<WarmCopy>,
}

impl WarmCopies {
    /// Copies the warm data of `warm` for the run `ctx` (which has a checkout of the canonical).
    pub fn make(ctx: &RunContext, warm: &WarmBase) -> Result<WarmCopies, RunnerError> {
        let base = ctx.base_checkout.as_deref().ok_or_else(|| {
            RunnerError::Other("a warm run needs a checkout of the canonical".into())
        })?;
        let name = names::cold_stack_name(ctx.recipe.name.as_str(), ctx.tested_name(), &ctx.build);
        // The scratch folder the docker runner's stack of this name would use.
        let work = ctx.run_dir.join("docker").join(&name);
        std::fs::create_dir_all(&work)
            .map_err(|e| RunnerError::Other(format!("could not create {}: {e}", work.display())))?;
        let labels = RunLabels {
            stack: name.clone(),
            kind: StackKind::Cold,
            recipe: ctx.recipe.name.as_str().to_string(),
            tag: ctx.tested_name().to_string(),
            build: ctx.build.clone(),
            created: now_unix(),
        };
        let helpers = Helpers::new(&name, labels.map(Some("helper")), &work);
        let mut made = WarmCopies {
            stack: name,
            copies: Vec::new(),
        };
        let image = helper_image(&made.read_base(ctx, base)?)?;
        made.copies = copy_volumes(warm, &labels, &helpers, &image)?;
        Ok(made)
    }

    /// Reads the canonical's checkout `base` as the run's stack would deploy it (its own
    /// `.env.sample`, canon's values for the stack, the run's extra env).
    fn read_base(&self, ctx: &RunContext, base: &Path) -> Result<RecipeFiles, RunnerError> {
        let domain = format!("{}.{DEFAULT_DOMAIN_SUFFIX}", self.stack);
        let overrides = plan::app_env(&self.stack, &domain, &ctx.env);
        RecipeFiles::load_with_env(base, &base.join(".env.sample"), &self.stack, &overrides)
            .map_err(|e| RunnerError::Other(e.to_string()))
    }
}

impl Drop for WarmCopies {
    fn drop(&mut self) {
        let problems = stacks::remove_all(&self.stack);
        if !problems.is_empty() {
            tracing::error!(stack = %self.stack, ?problems, "could not remove the warm copies");
        }
    }
}
