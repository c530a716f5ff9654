//! Step 2, prepare: a private folder, a fresh checkout of the mirror at the verified commit (and
//! of the canonical, as the upgrade base), the release check, and whether a ref run starts warm.
//! It ends in the run's one [`RunContext`], built here and nowhere else, with the harness's
//! `CANON_*` environment read off it.
//!
//! Separate because it is everything a runner is handed; what the runner does with it is the
//! next step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use canon_shared::gate::TestedRef;
use canon_shared::state::holds::{Holder, WarmHolds};
use canon_shared::state::{CanonicalRecord, StateStore};
use tempfile::TempDir;

use super::verify::Verified;
use super::{tested_text, RunError, RunSettings};
use crate::checkout::{self, CheckoutError, Want};
use crate::recipe::version;
use crate::runners::warm::WarmBase;
use crate::runners::{RunContext, Runner};

/// What the prepare step established: the runner's context, and what stops the run before the
/// runner starts.
#[derive(Debug)]
pub(super) struct Ready {
    /// The run as the runner sees it (its commit is the one checked out).
    pub(super) ctx: RunContext,
    /// What the release check found wrong (the run is red and the runner does not start).
    pub(super) problems: Vec<String>,
    /// For a ref run that runs cold: why it could not start from the canonical's data.
    pub(super) cold_because: Option<String>,
}

/// Makes the run's private folder under the work dir (removed when dropped, unless kept).
pub(super) fn run_folder(settings: &RunSettings) -> Result<TempDir, RunError> {
    let work_dir_err = |source| RunError::WorkDir {
        recipe: settings.recipe.name.to_string(),
        path: settings.work_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&settings.work_dir).map_err(work_dir_err)?;
    tempfile::Builder::new()
        .prefix(&format!(
            "canon-{}-{}-",
            settings.recipe.name,
            sanitize(&settings.build)
        ))
        .tempdir_in(&settings.work_dir)
        .map_err(work_dir_err)
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect()
}

/// Checks out what `verified` names into `root`, and the canonical `before` beside it, runs the
/// release check and decides warm or cold.
pub(super) fn prepare(
    settings: &RunSettings,
    runner: &dyn Runner,
    state: &dyn StateStore,
    before: Option<&CanonicalRecord>,
    verified: &Verified,
    root: &Path,
) -> Result<Ready, RunError> {
    let name = settings.recipe.name.to_string();
    let run_dir = root.join("run");
    std::fs::create_dir_all(&run_dir).map_err(|source| RunError::WorkDir {
        recipe: name.clone(),
        path: run_dir.clone(),
        source,
    })?;
    let co = checkout::fresh_checkout(&settings.mirror, &verified.want, &root.join("checkout"))
        .map_err(|source: CheckoutError| RunError::Checkout {
            recipe: name.clone(),
            source,
        })?;
    tracing::debug!(recipe = %name, commit = %co.commit, path = %co.path.display(), "Checked out the mirror.");
    let base_checkout = before.and_then(|c| base_checkout(settings, c, root));
    let problems = release_check(&settings.tested, &co.path, &name);
    let (warm, cold_because) =
        match warm_base(settings, runner, state, before, base_checkout.is_some()) {
            Ok(w) => (w, None),
            Err(why) => {
                canon_shared::outln!(
                    "canon: running {name} at {} cold: {why}",
                    tested_text(&settings.tested)
                );
                (None, Some(why))
            }
        };
    let ctx = run_context(settings, co, run_dir, before, base_checkout, warm);
    Ok(Ready {
        ctx,
        problems,
        cold_because,
    })
}

/// Returns a fresh checkout of the canonical's commit under `root`, the upgrade base; a run
/// without one still runs (its upgrade stage has nothing to start from).
fn base_checkout(
    settings: &RunSettings,
    canonical: &CanonicalRecord,
    root: &Path,
) -> Option<PathBuf> {
    let want = Want::Commit {
        commit: canonical.commit.clone(),
        tag: Some(canonical.version.to_string()),
    };
    match checkout::fresh_checkout(&settings.mirror, &want, &root.join("base")) {
        Ok(b) => Some(b.path),
        Err(e) => {
            tracing::warn!(recipe = %settings.recipe.name, canonical = %canonical.version, error = %e, "Cannot check out the canonical as the upgrade base.");
            None
        }
    }
}

/// The release check: a tag's version label must name the tag. Returns what is wrong (nothing
/// for a ref, which has no release to check).
fn release_check(tested: &TestedRef, checkout: &Path, name: &str) -> Vec<String> {
    let TestedRef::Tag(tag) = tested else {
        return Vec::new();
    };
    match version::check_release(checkout, tag) {
        Ok(l) => {
            tracing::debug!(recipe = %name, "Version label checked: {l}.");
            Vec::new()
        }
        Err(p) => vec![p.to_string()],
    }
}

/// Returns whether the run starts warm from the canonical's data: `Ok(Some)` with what to copy,
/// held shared (a promote waits for the copy), `Ok(None)` for a tag (tags always run cold), or
/// why a ref run runs cold.
fn warm_base(
    settings: &RunSettings,
    runner: &dyn Runner,
    state: &dyn StateStore,
    canonical: Option<&CanonicalRecord>,
    has_base_checkout: bool,
) -> Result<Option<WarmBase>, String> {
    let TestedRef::Ref(git_ref) = &settings.tested else {
        return Ok(None);
    };
    if !settings.warm {
        return Err("asked to run cold (`warm: false`)".into());
    }
    let canonical = canonical.ok_or("the recipe has no canonical yet")?;
    if !has_base_checkout {
        return Err(format!(
            "the mirror has no checkout of the canonical {}'s commit",
            canonical.version
        ));
    }
    if let (Some(there), Some(here)) = (&canonical.host, runner.warm_host()) {
        if *there != here {
            return Err(format!(
                "the canonical {}'s warm data is on host {there}, not on this host ({here})",
                canonical.version
            ));
        }
    }
    runner.warm_volumes(&settings.recipe.name)?;
    // Held from here until the runner has copied the data: a promote that starts meanwhile
    // waits, and one that ran while this run waited is seen below.
    let holder = Holder {
        build: settings.build.clone(),
        what: format!("warm run of {git_ref}"),
    };
    let hold = WarmHolds::new(&settings.state_dir, &settings.recipe.name)
        .attach(&holder, settings.lock_wait)
        .map_err(|e| format!("cannot hold the warm data: {e}"))?;
    let now = state
        .read_canonical(&settings.recipe.name)
        .map_err(|e| format!("cannot read the canonical again: {e}"))?;
    if now.as_ref().map(|c| (&c.version, &c.commit))
        != Some((&canonical.version, &canonical.commit))
    {
        return Err(format!(
            "the canonical moved from {} to {} while this run waited for its warm data",
            canonical.version,
            now.map_or("none".to_string(), |c| c.version.to_string())
        ));
    }
    let volumes = runner.warm_volumes(&settings.recipe.name)?;
    Ok(Some(WarmBase {
        canonical: canonical.clone(),
        volumes,
        hold: std::sync::Arc::new(std::sync::Mutex::new(Some(hold))),
    }))
}

/// Builds the run's context: the one place a [`RunContext`] is made.
pub(super) fn run_context(
    settings: &RunSettings,
    checkout: checkout::Checkout,
    run_dir: PathBuf,
    canonical: Option<&CanonicalRecord>,
    base_checkout: Option<PathBuf>,
    warm: Option<WarmBase>,
) -> RunContext {
    let mut ctx = RunContext {
        recipe: settings.recipe.clone(),
        tested: settings.tested.clone(),
        commit: checkout.commit,
        checkout: checkout.path,
        run_dir,
        canonical: canonical.cloned(),
        base_checkout,
        build: settings.build.clone(),
        quick: settings.quick,
        warm,
        env: BTreeMap::new(),
    };
    ctx.env = harness_env(&ctx, &settings.env);
    ctx
}

/// Returns the harness's environment: `extra` (the `env` setting) with the `CANON_*` values read
/// off `ctx` (the command runner adds `CANON_RESULTS`, and `CANON_WARM_VOLUMES` in a warm run).
fn harness_env(ctx: &RunContext, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env = extra.clone();
    let warm = ctx.warm.is_some();
    env.insert("CANON_RECIPE".into(), ctx.recipe.name.to_string());
    match &ctx.tested {
        TestedRef::Tag(t) => env.insert("CANON_TAG".into(), t.clone()),
        TestedRef::Ref(r) => env.insert("CANON_REF".into(), r.clone()),
    };
    env.insert("CANON_COMMIT".into(), ctx.commit.to_string());
    env.insert("CANON_WORKDIR".into(), ctx.checkout.display().to_string());
    env.insert(
        "CANON_COLD".into(),
        if ctx.quick || warm { "0" } else { "1" }.into(),
    );
    if warm {
        env.insert("CANON_WARM".into(), "1".into());
    }
    if ctx.quick {
        env.insert("CANON_QUICK".into(), "1".into());
    }
    env.insert("CANON_BUILD".into(), ctx.build.clone());
    if let Some(c) = &ctx.canonical {
        env.insert("CANON_UPGRADE_BASE".into(), c.version.to_string());
        env.insert("CANON_UPGRADE_BASE_COMMIT".into(), c.commit.to_string());
    }
    if let Some(b) = &ctx.base_checkout {
        env.insert("CANON_UPGRADE_BASE_DIR".into(), b.display().to_string());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use canon_shared::recipe::{Recipe, RecipeName, RepoLocation};

    fn test_recipe() -> Recipe {
        let loc = |u: &str| RepoLocation {
            url: u.into(),
            full_name: None,
            forge: None,
        };
        Recipe {
            name: RecipeName::parse("app").unwrap(),
            upstream: loc("/u"),
            mirror: loc("/m"),
            branch: "main".into(),
            required_stages: None,
            test_command: None,
            deploy_timeout_secs: None,
            health_path: None,
            stability_window_secs: None,
            host_access: Vec::new(),
            serving: Default::default(),
            secrets: Default::default(),
            drone_repo: None,
            lint_skip: Vec::new(),
            data_check: None,
        }
    }

    #[test]
    fn the_harness_env_marks_quick_runs_and_keeps_the_extra_env() {
        let ctx = RunContext {
            recipe: test_recipe(),
            tested: TestedRef::Tag("1.0.0+1".into()),
            commit: "abcd".repeat(10).parse().unwrap(),
            checkout: PathBuf::from("/w/checkout"),
            run_dir: PathBuf::from("/w/run"),
            canonical: None,
            base_checkout: None,
            build: "9".into(),
            quick: true,
            warm: None,
            env: BTreeMap::new(),
        };
        let env = harness_env(
            &ctx,
            &BTreeMap::from([("EXTRA".to_string(), "x".to_string())]),
        );
        assert_eq!(env["CANON_COLD"], "0");
        assert_eq!(env["CANON_QUICK"], "1");
        assert_eq!(env["CANON_TAG"], "1.0.0+1");
        assert_eq!(env["CANON_COMMIT"], "abcd".repeat(10));
        assert_eq!(env["CANON_WORKDIR"], "/w/checkout");
        assert_eq!(env["CANON_BUILD"], "9");
        assert_eq!(env["EXTRA"], "x");
        assert!(!env.contains_key("CANON_UPGRADE_BASE"));
        assert!(!env.contains_key("CANON_WARM"));
    }
}
