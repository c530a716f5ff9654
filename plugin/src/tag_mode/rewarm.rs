//! `canonical rewarm`: the canonical's tag deployed again as the warm canonical, so a host that
//! lost its warm data (volumes removed, a rebuilt engine) gets its warm base back without waiting
//! for the next upstream release.
//!
//! It goes through what a promote's warm deploy goes through: the exclusive hold on the warm data
//! ([`WarmHolds::promote`]), the settle of an earlier promote, the runner's promote step on a
//! fresh checkout of the canonical's commit, and the settle that drops the known-good copies once
//! the canonical is seen to name the tag. It never writes the canonical or its history: the
//! canonical does not change, only the data beside it. When the canonical moves while it runs
//! (another host promoted through a state repository), the warm data goes back to what it was
//! and the command is refused.

use canon_shared::gate::TestedRef;
use canon_shared::state::holds::{Holder, WarmHolds};
use canon_shared::state::{CanonicalRecord, StateError};

use super::prepare::{run_context, run_folder};
use super::{RunError, RunSettings};
use crate::checkout::{self, CheckoutError, Want};
use crate::runners::{Runner, RunnerError};

/// Why the warm canonical was not deployed again. The canonical is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum RewarmError {
    /// The recipe has no canonical: there is nothing to deploy.
    #[error("{recipe} has no canonical yet: its first promote deploys the warm canonical")]
    NoCanonical { recipe: String },
    /// The runner keeps no warm data to deploy again.
    #[error("{recipe}: {why}")]
    Runner { recipe: String, why: String },
    /// The canonical's warm data belongs on another Docker node.
    #[error("{recipe}: the canonical {version}'s warm data is on host {there}, not on this host ({here}); run it there")]
    OtherHost {
        recipe: String,
        version: String,
        there: String,
        here: String,
    },
    /// The mirror cannot give the canonical's commit.
    #[error("{recipe}: cannot check out the canonical {version}'s commit {commit}")]
    Checkout {
        recipe: String,
        version: String,
        commit: String,
        #[source]
        source: Box<CheckoutError>,
    },
    /// The warm data is held by a promote or a warm run that did not end in time.
    #[error("{recipe}: cannot hold the warm data")]
    Hold {
        recipe: String,
        #[source]
        source: StateError,
    },
    /// The canonical changed while the command waited or deployed.
    #[error("{recipe}: the canonical moved from {from} to {to} while the warm canonical was deployed again; nothing was changed (run it again to deploy {to})")]
    Moved {
        recipe: String,
        from: String,
        to: String,
    },
    /// The deploy of the warm canonical failed (its earlier data, if any, was put back).
    #[error("{recipe}: the warm deploy of {version} failed")]
    Deploy {
        recipe: String,
        version: String,
        #[source]
        source: RunnerError,
    },
    /// The run folder or the records (boxed: the result stays small).
    #[error(transparent)]
    Run(Box<RunError>),
}

impl From<RunError> for RewarmError {
    fn from(e: RunError) -> Self {
        RewarmError::Run(Box::new(e))
    }
}

impl RewarmError {
    /// Returns true when the command was asked for something it cannot do (exit 2, as a bad
    /// setting): the runner keeps no warm data.
    pub fn is_usage(&self) -> bool {
        matches!(self, RewarmError::Runner { .. })
    }
}

/// Deploys the canonical of `settings.recipe` again as its warm canonical through `runner`, under
/// the exclusive hold on the warm data. `settings.tested` is not read: what is deployed is the
/// canonical's tag at its commit. Returns the canonical whose data was deployed.
pub fn rewarm(settings: &RunSettings, runner: &dyn Runner) -> Result<CanonicalRecord, RewarmError> {
    let name = settings.recipe.name.clone();
    let recipe = name.to_string();
    let state_err = |source: StateError| RunError::State {
        recipe: recipe.clone(),
        source,
    };
    let store = settings.store();
    let canonical = store
        .read_canonical(&name)
        .map_err(state_err)?
        .ok_or_else(|| RewarmError::NoCanonical {
            recipe: recipe.clone(),
        })?;
    runner
        .keeps_warm_data()
        .map_err(|why| RewarmError::Runner {
            recipe: recipe.clone(),
            why,
        })?;
    if let (Some(there), Some(here)) = (&canonical.host, runner.warm_host()) {
        if *there != here {
            return Err(RewarmError::OtherHost {
                recipe,
                version: canonical.version.to_string(),
                there: there.clone(),
                here,
            });
        }
    }
    let tag = canonical.version.to_string();
    let settings = RunSettings {
        tested: TestedRef::Tag(tag.clone()),
        ..settings.clone()
    };
    let folder = run_folder(&settings)?;
    let root = folder.path();
    let run_dir = root.join("run");
    std::fs::create_dir_all(&run_dir).map_err(|source| RunError::WorkDir {
        recipe: recipe.clone(),
        path: run_dir.clone(),
        source,
    })?;
    let want = Want::Commit {
        commit: canonical.commit.clone(),
        tag: Some(tag.clone()),
    };
    let co = checkout::fresh_checkout(&settings.mirror, &want, &root.join("checkout")).map_err(
        |source| RewarmError::Checkout {
            recipe: recipe.clone(),
            version: tag.clone(),
            commit: canonical.commit.to_string(),
            source: Box::new(source),
        },
    )?;
    let holder = Holder {
        build: settings.build.clone(),
        what: format!("rewarm of tag {tag}"),
    };
    let hold = WarmHolds::new(&settings.state_dir, &name)
        .promote(&holder, settings.lock_wait)
        .map_err(|source| RewarmError::Hold {
            recipe: recipe.clone(),
            source,
        })?;
    // Read again under the hold: a promote may have finished while this waited for it.
    let moved = |now: Option<&CanonicalRecord>| -> Option<String> {
        match now {
            Some(c)
                if c.version == canonical.version && c.commit.same_object(&canonical.commit) =>
            {
                None
            }
            Some(c) => Some(c.version.to_string()),
            None => Some("none".into()),
        }
    };
    let now = store.read_canonical(&name).map_err(state_err)?;
    if let Some(to) = moved(now.as_ref()) {
        return Err(RewarmError::Moved {
            recipe,
            from: tag,
            to,
        });
    }
    let ctx = run_context(&settings, co, run_dir, Some(&canonical), None, None);
    // A promote killed half-way is finished or rolled back first, as before every gate.
    if let Err(e) = runner.settle_promote(&ctx, Some(&canonical)) {
        tracing::warn!(recipe = %name, error = %e, "Cannot settle an earlier promote.");
    }
    tracing::info!(recipe = %name, version = %tag, "Deploying the canonical again as the warm canonical.");
    runner.promote(&ctx).map_err(|source| RewarmError::Deploy {
        recipe: recipe.clone(),
        version: tag.clone(),
        source,
    })?;
    // The canonical names the tag, so the settle drops the known-good copies; one that moved
    // meanwhile (another host, through a state repository) has the copies put back.
    let after = store.read_canonical(&name).map_err(state_err)?;
    let settled = runner.settle_promote(&ctx, after.as_ref());
    drop(hold);
    if let Some(to) = moved(after.as_ref()) {
        return Err(RewarmError::Moved {
            recipe,
            from: tag,
            to,
        });
    }
    settled.map_err(|source| RewarmError::Deploy {
        recipe,
        version: tag,
        source,
    })?;
    Ok(canonical)
}
