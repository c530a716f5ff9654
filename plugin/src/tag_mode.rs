//! Tag mode: verify the tag against upstream, a fresh checkout of the mirror, the version-label
//! check, the cold run through a runner, then the gate and the promote under the recipe's lock.
//!
//! The core is [`run_tag_mode`], a library function over [`RunSettings`] and a [`Runner`], so the
//! sweep's inline mode and the tests call it in-process.
//!
//! Exit codes: 0 green (promoted, or nothing to promote, or a refused promotion, which the log
//! shows in a banner); 1 red, refused verification, or an error; 2 bad settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use canon_shared::commit::{CommitId, InvalidCommitId};
use canon_shared::gate::{self, GateDecision, RunFacts, TestedRef};
use canon_shared::mirror::{self, Credentials, GitRemote, MirrorError};
use canon_shared::recipe::{Enrollment, Recipe};
use canon_shared::state::{
    self, CanonicalRecord, Change, HistoryEntry, LockWait, StateError, StateStore,
};

use crate::checkout::{self, CheckoutError, Want};
use crate::compose::{self, ComposeFile};
use crate::exit::{error_chain, report_error, EXIT_GREEN, EXIT_RED, EXIT_USAGE};
use crate::remotes::GitAccess;
use crate::report::{self, CanonicalSummary, GateReport, Report};
use crate::runners::warm::WarmBase;
use crate::runners::{RunContext, Runner};
use crate::settings::{ClaimedCommit, Settings, SettingsError};
use canon_shared::state::holds::{Holder, WarmHolds};

/// Runs tag mode with validated settings; returns the exit code.
pub fn main(settings: &Settings) -> u8 {
    let prepared = match prepare(settings) {
        Ok(p) => p,
        Err(e) => {
            report_error(&e);
            return EXIT_USAGE;
        }
    };
    match run_tag_mode(&prepared.run, prepared.runner.as_ref()) {
        Ok(outcome) => outcome.report.exit_code,
        Err(e) => {
            report_error(&e);
            EXIT_RED
        }
    }
}

/// A tag-mode run ready to go: its settings, its runner, and the git credentials that must
/// outlive the run.
pub struct Prepared {
    /// What to run.
    pub run: RunSettings,
    /// The runner.
    pub runner: Box<dyn Runner>,
    /// Keeps the SSH key file for the run's remotes.
    _access: GitAccess,
}

/// Why tag mode could not be prepared from valid settings: a settings problem (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Enrollment(#[from] canon_shared::recipe::EnrollmentError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("cannot write the SSH key to a private file: {0}")]
    SshKey(std::io::Error),
}

/// Loads the enrollment, finds the recipe and builds the runner.
pub fn prepare(settings: &Settings) -> Result<Prepared, PrepareError> {
    let enrollment = Enrollment::load(&settings.config)?;
    let problem = |p: String| PrepareError::Settings(SettingsError { problems: vec![p] });
    let recipe = match (&settings.recipe, &settings.drone_repo) {
        (Some(name), _) => enrollment.get(name).cloned().ok_or_else(|| {
            problem(format!(
                "recipe `{name}` is not enrolled in {}",
                settings.config.display()
            ))
        })?,
        (None, Some(repo)) => enrollment
            .recipes
            .iter()
            .find(|r| r.mirror.matches(repo) || r.upstream.matches(repo))
            .cloned()
            .ok_or_else(|| {
                problem(format!(
                    "`recipe` is unset and no enrolled recipe's mirror or upstream is DRONE_REPO={repo}"
                ))
            })?,
        (None, None) => return Err(problem("`recipe` is required in tag mode".into())),
    };
    let tested = settings
        .tested
        .clone()
        .ok_or_else(|| problem("tag mode needs `tag` or `ref`".into()))?;
    let access = GitAccess::from_settings(settings).map_err(PrepareError::SshKey)?;
    let runner = crate::runners::from_settings(settings)?;
    Ok(Prepared {
        run: RunSettings::new(settings, recipe, tested, access.credentials()),
        runner,
        _access: access,
    })
}

/// Everything one tag-mode run needs, with no environment access. The sweep's inline mode builds
/// one per recipe.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The enrolled recipe.
    pub recipe: Recipe,
    /// The tag (or ref) to test.
    pub tested: TestedRef,
    /// Commits the build claims; each must equal the tag's peeled commit upstream.
    pub claimed_commits: Vec<ClaimedCommit>,
    /// A quick run (never promotes).
    pub quick: bool,
    /// A ref run starts from the canonical's warm data when this host holds it.
    pub warm: bool,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The git state repository that holds the canonical records instead of the state dir.
    pub state_repo: Option<GitRemote>,
    /// Where the per-run folder is made.
    pub work_dir: PathBuf,
    /// Keep the per-run folder afterwards.
    pub keep_work_dir: bool,
    /// How to take the recipe lock.
    pub lock_wait: LockWait,
    /// The upstream repository (tags are verified here).
    pub upstream: GitRemote,
    /// The mirror repository (checkouts come from here).
    pub mirror: GitRemote,
    /// Extra environment for the harness.
    pub env: BTreeMap<String, String>,
    /// The build number or a local id.
    pub build: String,
    /// A link to the build.
    pub build_link: Option<String>,
    /// What started the run (recorded in the history).
    pub trigger: String,
    /// Where to write the JSON report (`None`: no file).
    pub report: Option<PathBuf>,
}

impl RunSettings {
    /// Returns the run of `recipe` at `tested` that `settings` describe: the one constructor of
    /// tag mode and the sweep's inline runs (which then set their own claim, trigger and report).
    pub fn new(
        settings: &Settings,
        recipe: Recipe,
        tested: TestedRef,
        credentials: &Credentials,
    ) -> Self {
        Self {
            upstream: credentials.upstream(&recipe),
            mirror: credentials.mirror(&recipe),
            recipe,
            tested,
            claimed_commits: settings.claimed_commits.clone(),
            quick: settings.quick,
            warm: settings.warm,
            state_dir: settings.state_dir.clone(),
            state_repo: settings
                .state_repo
                .as_deref()
                .map(|url| credentials.mirror_remote(url)),
            work_dir: settings.work_dir.clone(),
            keep_work_dir: settings.keep_work_dir,
            lock_wait: settings.lock_wait,
            env: settings.env.clone(),
            build: settings.build.clone(),
            build_link: settings.build_link.clone(),
            trigger: settings.trigger.clone(),
            report: Some(settings.report_path("canon-report.json")),
        }
    }
}

impl RunSettings {
    /// Returns where the run reads and writes the canonical: the state repository when one is
    /// set, else the state dir.
    pub fn store(&self) -> Box<dyn StateStore> {
        state::open_store(&self.state_dir, self.state_repo.clone())
    }
}

/// A finished run: its report (which also carries the exit code).
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The report, as written to the report file.
    pub report: Report,
}

impl RunOutcome {
    /// Returns true when the run's canonical was written.
    pub fn promoted(&self) -> bool {
        self.report.promoted
    }
}

/// Why a run stopped before a verdict. Each one exits 1; none leaves the canonical changed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{recipe}: tag {tag} claims commit {claimed} ({source_name}), but upstream's tag points at {actual}; a build that claims a tag at another commit is never tested")]
    CommitMismatch {
        recipe: String,
        tag: String,
        source_name: &'static str,
        claimed: String,
        actual: String,
    },
    #[error("{recipe}: upstream {url} has no tag {tag}")]
    TagNotUpstream {
        recipe: String,
        url: String,
        tag: String,
    },
    #[error("{recipe}: cannot list upstream refs")]
    Upstream {
        recipe: String,
        #[source]
        source: MirrorError,
    },
    #[error("{recipe}: cannot check out the mirror")]
    Checkout {
        recipe: String,
        #[source]
        source: CheckoutError,
    },
    #[error("{recipe}: cannot make the run folder under {path}: {source}")]
    WorkDir {
        recipe: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{recipe}: state")]
    State {
        recipe: String,
        #[source]
        source: StateError,
    },
    #[error("{recipe}: the {what} is not a full commit id")]
    NotACommit {
        recipe: String,
        what: &'static str,
        #[source]
        source: InvalidCommitId,
    },
}

impl RunError {
    /// Returns true for a refused verification (the claim and upstream disagree, or the mirror
    /// does): recorded in the history as a refusal.
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            RunError::CommitMismatch { .. }
                | RunError::TagNotUpstream { .. }
                | RunError::Checkout {
                    source: CheckoutError::MirrorDiffers { .. } | CheckoutError::MissingTag { .. },
                    ..
                }
        )
    }
}

/// Runs one recipe at one tag (or ref) through `runner`, then the gate, then the promote. Always
/// writes the report (when `settings.report` is set), also when the run stops with an error.
pub fn run_tag_mode(settings: &RunSettings, runner: &dyn Runner) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let started_at = rfc3339(state::now());
    let name = settings.recipe.name.to_string();
    let (tag, git_ref) = match &settings.tested {
        TestedRef::Tag(t) => (Some(t.clone()), None),
        TestedRef::Ref(r) => (None, Some(r.clone())),
    };
    let mut report = Report {
        recipe: name.clone(),
        tag,
        git_ref,
        commit: None,
        build: settings.build.clone(),
        build_link: settings.build_link.clone(),
        trigger: settings.trigger.clone(),
        runner: runner.name().to_string(),
        quick: settings.quick,
        warm: None,
        cold_because: None,
        stages: Vec::new(),
        green: false,
        problems: Vec::new(),
        gate: GateReport {
            decision: "refuse".into(),
            reasons: Vec::new(),
        },
        promoted: false,
        canonical_before: None,
        canonical_after: None,
        error: None,
        exit_code: EXIT_RED,
        started_at,
        seconds: 0.0,
    };
    let store = settings.store();
    let state = store.as_ref();
    let result = run_steps(settings, runner, state, &mut report);
    report.seconds = started.elapsed().as_secs_f64();
    if let Err(e) = &result {
        report.error = Some(error_chain(e));
        report.green = false;
        report.exit_code = EXIT_RED;
        report.gate = GateReport {
            decision: "refuse".into(),
            reasons: vec![e.to_string()],
        };
        report.canonical_after = report.canonical_before.clone();
        if e.is_verification() {
            let entry = history_entry(settings, &report, "refuse");
            if let Err(he) = record_only(state, settings, entry) {
                tracing::error!(recipe = %name, error = %he, "Cannot record the refusal in the history.");
            }
        }
    }
    println!("{}", report.summary());
    if let Some(path) = &settings.report {
        match report.write(path) {
            Ok(()) => tracing::info!(path = %path.display(), "Wrote the report."),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "Cannot write the report.")
            }
        }
    }
    result.map(|()| RunOutcome { report })
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn history_entry(settings: &RunSettings, report: &Report, decision: &str) -> HistoryEntry {
    HistoryEntry {
        at: state::now(),
        recipe: settings.recipe.name.clone(),
        decision: decision.to_string(),
        version: Some(match &settings.tested {
            TestedRef::Tag(t) => t.clone(),
            TestedRef::Ref(r) => format!("ref {r}"),
        }),
        // Every commit a report holds is a full id: a claim the settings parsed, upstream's
        // peeled tag or the checkout's HEAD.
        tested_commit: report
            .commit
            .as_deref()
            .and_then(|c| CommitId::parse(c).ok()),
        reasons: report.gate.reasons.clone(),
        trigger: Some(settings.trigger.clone()),
        build: Some(
            settings
                .build_link
                .clone()
                .unwrap_or_else(|| settings.build.clone()),
        ),
        canonical_before: report.canonical_before.as_ref().map(|c| c.version.clone()),
    }
}

fn run_steps(
    settings: &RunSettings,
    runner: &dyn Runner,
    state: &dyn StateStore,
    report: &mut Report,
) -> Result<(), RunError> {
    let recipe = &settings.recipe;
    let name = recipe.name.to_string();
    let state_err = |source: StateError| RunError::State {
        recipe: name.clone(),
        source,
    };
    let before = state.read_canonical(&recipe.name).map_err(state_err)?;
    report.canonical_before = before.as_ref().map(CanonicalSummary::from);

    // 1. What exactly is tested: the tag's peeled commit, from upstream.
    let want = match &settings.tested {
        TestedRef::Tag(tag) => {
            let commit = upstream_tag_commit(settings, tag)?;
            tracing::info!(recipe = %name, tag, %commit, "Resolved the tag upstream.");
            for claim in &settings.claimed_commits {
                if !claim.commit.eq_ignore_ascii_case(&commit) {
                    report.commit = Some(claim.commit.clone());
                    return Err(RunError::CommitMismatch {
                        recipe: name,
                        tag: tag.clone(),
                        source_name: claim.source,
                        claimed: claim.commit.clone(),
                        actual: commit,
                    });
                }
            }
            report.commit = Some(commit.clone());
            Want::Tag {
                tag: tag.clone(),
                commit,
            }
        }
        TestedRef::Ref(r) => Want::Ref {
            reference: r.clone(),
            commit: settings.claimed_commits.first().map(|c| c.commit.clone()),
        },
    };

    // 2. A private folder and a fresh checkout of the mirror.
    std::fs::create_dir_all(&settings.work_dir).map_err(|source| RunError::WorkDir {
        recipe: name.clone(),
        path: settings.work_dir.clone(),
        source,
    })?;
    let run_root = tempfile::Builder::new()
        .prefix(&format!("canon-{name}-{}-", sanitize(&settings.build)))
        .tempdir_in(&settings.work_dir)
        .map_err(|source| RunError::WorkDir {
            recipe: name.clone(),
            path: settings.work_dir.clone(),
            source,
        })?;
    let result = run_in_folder(
        settings,
        runner,
        state,
        report,
        before,
        run_root.path(),
        want,
    );
    if settings.keep_work_dir {
        let kept = run_root.keep();
        tracing::info!(path = %kept.display(), "Kept the run folder.");
    }
    result
}

/// Returns the commit `tag` peels to upstream.
fn upstream_tag_commit(settings: &RunSettings, tag: &str) -> Result<String, RunError> {
    let name = settings.recipe.name.to_string();
    let refs = mirror::ls_remote(&settings.upstream).map_err(|source| RunError::Upstream {
        recipe: name.clone(),
        source,
    })?;
    let tag_ref = refs.tags.get(tag).ok_or_else(|| RunError::TagNotUpstream {
        recipe: name.clone(),
        url: settings.upstream.display_url(),
        tag: tag.to_string(),
    })?;
    Ok(tag_ref.peeled.to_ascii_lowercase())
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn run_in_folder(
    settings: &RunSettings,
    runner: &dyn Runner,
    state: &dyn StateStore,
    report: &mut Report,
    before: Option<CanonicalRecord>,
    root: &Path,
    want: Want,
) -> Result<(), RunError> {
    let recipe = &settings.recipe;
    let name = recipe.name.to_string();
    let checkout_err = |source: CheckoutError| RunError::Checkout {
        recipe: name.clone(),
        source,
    };
    let checkout_dir = root.join("checkout");
    let run_dir = root.join("run");
    std::fs::create_dir_all(&run_dir).map_err(|source| RunError::WorkDir {
        recipe: name.clone(),
        path: run_dir.clone(),
        source,
    })?;
    let co =
        checkout::fresh_checkout(&settings.mirror, &want, &checkout_dir).map_err(checkout_err)?;
    report.commit = Some(co.commit.clone());
    tracing::debug!(recipe = %name, commit = %co.commit, path = %co.path.display(), "Checked out the mirror.");

    let base_checkout = before.as_ref().and_then(|c| {
        let dir = root.join("base");
        let want = Want::Commit {
            commit: c.commit.to_string(),
            tag: Some(c.version.to_string()),
        };
        match checkout::fresh_checkout(&settings.mirror, &want, &dir) {
            Ok(b) => Some(b.path),
            Err(e) => {
                tracing::warn!(recipe = %name, canonical = %c.version, error = %e, "Cannot check out the canonical as the upgrade base.");
                None
            }
        }
    });

    // 3. The release check: the version label must name the tag.
    if let TestedRef::Tag(tag) = &settings.tested {
        match ComposeFile::load_dir(&co.path) {
            Err(e) => report.problems.push(e.to_string()),
            Ok(c) => match compose::version_label(&c, tag) {
                Ok(l) => tracing::debug!(recipe = %name, "Version label checked: {l}."),
                Err(p) => report.problems.push(p.to_string()),
            },
        }
    }

    // 4. The run: cold, or warm from the canonical's data.
    let warm = match warm_base(
        settings,
        runner,
        state,
        before.as_ref(),
        base_checkout.is_some(),
    ) {
        Ok(w) => w,
        Err(why) => {
            println!(
                "canon: running {name} at {} cold: {why}",
                report.tested_text()
            );
            report.cold_because = Some(why);
            None
        }
    };
    let ctx = RunContext {
        recipe: recipe.clone(),
        tested: settings.tested.clone(),
        commit: co.commit.clone(),
        checkout: co.path.clone(),
        run_dir,
        canonical: before.clone(),
        base_checkout: base_checkout.clone(),
        build: settings.build.clone(),
        quick: settings.quick,
        env: harness_env(
            settings,
            &co.commit,
            &co.path,
            before.as_ref(),
            base_checkout.as_deref(),
            warm.is_some(),
        ),
        warm,
    };
    if report.problems.is_empty() {
        match &ctx.warm {
            Some(w) => println!(
                "canon: running {} at {} (commit {}) with the {} runner, warm: upgrading from the canonical {}'s data ({} volumes)",
                name,
                report.tested_text(),
                co.commit,
                runner.name(),
                w.canonical.version,
                w.volumes.len()
            ),
            None => println!(
                "canon: running {} at {} (commit {}) with the {} runner",
                name,
                report.tested_text(),
                co.commit,
                runner.name()
            ),
        }
        match runner.run(&ctx) {
            Ok(output) => {
                report.stages = output.stages;
                report.warm = output.warm;
            }
            Err(e) => {
                report.stages = e.stages().to_vec();
                report
                    .problems
                    .push(format!("the {} runner failed: {e}", runner.name()));
            }
        }
        // A runner that failed before its copy still lets go of the warm data.
        if let Some(w) = &ctx.warm {
            w.release();
        }
        for s in &report.stages {
            println!("{}", report::stage_line(s));
        }
    } else {
        for p in &report.problems {
            println!("canon: not running: {p}");
        }
    }
    let mut required = gate::required_stages(recipe, before.is_some());
    if ctx.warm.is_some() {
        // A warm run reattaches the canonical's data in place of the install.
        required.retain(|s| *s != canon_shared::recipe::Stage::Install);
    }
    report.green = report.problems.is_empty() && gate::is_green(&report.stages, &required);

    // 5. The gate and the promote, under the recipe's lock.
    gate_and_promote(settings, runner, state, report, &ctx)
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

/// Returns the `CANON_*` environment of the harness (the command runner adds `CANON_RESULTS`,
/// and `CANON_WARM_VOLUMES` in a warm run).
pub fn harness_env(
    settings: &RunSettings,
    commit: &str,
    checkout: &Path,
    canonical: Option<&CanonicalRecord>,
    base_checkout: Option<&Path>,
    warm: bool,
) -> BTreeMap<String, String> {
    let mut env = settings.env.clone();
    env.insert("CANON_RECIPE".into(), settings.recipe.name.to_string());
    match &settings.tested {
        TestedRef::Tag(t) => env.insert("CANON_TAG".into(), t.clone()),
        TestedRef::Ref(r) => env.insert("CANON_REF".into(), r.clone()),
    };
    env.insert("CANON_COMMIT".into(), commit.to_string());
    env.insert("CANON_WORKDIR".into(), checkout.display().to_string());
    env.insert(
        "CANON_COLD".into(),
        if settings.quick || warm { "0" } else { "1" }.into(),
    );
    if warm {
        env.insert("CANON_WARM".into(), "1".into());
    }
    if settings.quick {
        env.insert("CANON_QUICK".into(), "1".into());
    }
    env.insert("CANON_BUILD".into(), settings.build.clone());
    if let Some(c) = canonical {
        env.insert("CANON_UPGRADE_BASE".into(), c.version.to_string());
        env.insert("CANON_UPGRADE_BASE_COMMIT".into(), c.commit.to_string());
    }
    if let Some(b) = base_checkout {
        env.insert("CANON_UPGRADE_BASE_DIR".into(), b.display().to_string());
    }
    env
}

fn gate_and_promote(
    settings: &RunSettings,
    runner: &dyn Runner,
    state: &dyn StateStore,
    report: &mut Report,
    ctx: &RunContext,
) -> Result<(), RunError> {
    let recipe = &settings.recipe;
    let name = recipe.name.to_string();
    let state_err = |source: StateError| RunError::State {
        recipe: name.clone(),
        source,
    };
    tracing::debug!(recipe = %name, "Taking the recipe lock for the gate.");
    let lock = state
        .lock(&recipe.name, settings.lock_wait)
        .map_err(state_err)?;
    // Read again under the lock: another run may have promoted while this one ran.
    let canonical = state.read_canonical(&recipe.name).map_err(state_err)?;
    let tag_commit_now = match &settings.tested {
        TestedRef::Tag(tag) => match upstream_tag_commit(settings, tag).and_then(|c| {
            CommitId::parse(&c).map_err(|source| RunError::NotACommit {
                recipe: name.clone(),
                what: "commit upstream's tag points at",
                source,
            })
        }) {
            Ok(c) => {
                tracing::debug!(recipe = %name, tag, commit = %c, "Resolved the tag upstream again for the gate.");
                Some(c)
            }
            Err(e) => {
                tracing::warn!(recipe = %name, error = %error_chain(&e), "Cannot resolve the tag again for the gate.");
                None
            }
        },
        TestedRef::Ref(_) => None,
    };
    let tested_commit = CommitId::parse(&ctx.commit).map_err(|source| RunError::NotACommit {
        recipe: name.clone(),
        what: "tested commit",
        source,
    })?;
    let stages = report.stages.clone();
    let problems = report.problems.clone();
    let gate = |canonical: Option<&CanonicalRecord>| {
        gate::promote_gate(&RunFacts {
            recipe: Some(recipe),
            cold: !settings.quick && ctx.warm.is_none(),
            quick: settings.quick,
            tested: settings.tested.clone(),
            tested_commit: tested_commit.clone(),
            tag_commit_now: tag_commit_now.clone(),
            stages: &stages,
            canonical,
            problems: &problems,
        })
    };
    let first = gate(canonical.as_ref());
    report.exit_code = if report.green { EXIT_GREEN } else { EXIT_RED };
    // The warm data changes only under the exclusive hold, which waits for warm runs still
    // copying it: a promote waits up to `lock_wait`; a mere repair does not wait.
    let holds = WarmHolds::new(&settings.state_dir, &recipe.name);
    let holder = Holder {
        build: settings.build.clone(),
        what: format!("promote of {}", report.tested_text()),
    };
    let promoting = matches!(first, GateDecision::Promote { .. });
    let hold = holds.promote(
        &holder,
        if promoting {
            settings.lock_wait
        } else {
            LockWait::Fail
        },
    );
    let mut promote_failed = None;
    match &hold {
        // A promote killed half-way is finished or rolled back here, so the warm data matches
        // the canonical whatever this run decides.
        Ok(_) => {
            if let Err(e) = runner.settle_promote(ctx, canonical.as_ref()) {
                tracing::warn!(recipe = %name, error = %e, "Cannot settle an earlier promote.");
            }
        }
        Err(e) if promoting => {
            promote_failed = Some(format!(
                "the promote step could not hold the warm data: {e}"
            ));
        }
        Err(e) => {
            tracing::info!(recipe = %name, error = %e, "Warm runs are copying the warm data; an unsettled promote is left to the next run.");
        }
    }
    // The warm deploy comes before the record says so; a promote step that fails is a refusal.
    if let (GateDecision::Promote { version, .. }, None) = (&first, &promote_failed) {
        tracing::info!(recipe = %name, version = %version, "The gate allows the promotion; running the promote step.");
        if let Err(e) = runner.promote(ctx) {
            promote_failed = Some(format!("the promote step failed: {e}"));
        }
    }
    let promote_ran = matches!(first, GateDecision::Promote { .. }) && promote_failed.is_none();
    // The node the promote left the warm data on moves with the canonical.
    let warm_host = if promote_ran {
        runner.warm_host()
    } else {
        None
    };
    // The decision is written against the state it goes over: the gate runs again there (in a
    // state repository another host may have decided first). Only a run whose promote step ran
    // can promote.
    let committed = state
        .commit(&lock, &mut |current| {
            let decision = match (&promote_failed, promote_ran) {
                (Some(why), _) => GateReport {
                    decision: "refuse".into(),
                    reasons: vec![why.clone()],
                },
                (None, true) => {
                    let again = gate(current);
                    GateReport {
                        decision: again.name().into(),
                        reasons: again.reasons(),
                    }
                }
                (None, false) => GateReport {
                    decision: first.name().into(),
                    reasons: first.reasons(),
                },
            };
            report.gate = decision;
            let record = match gate(current) {
                GateDecision::Promote { version, commit }
                    if promote_ran && report.gate.decision == "promote" =>
                {
                    Some(CanonicalRecord {
                        recipe: recipe.name.clone(),
                        version,
                        commit,
                        promoted_at: state::now(),
                        build: Some(
                            settings
                                .build_link
                                .clone()
                                .unwrap_or_else(|| settings.build.clone()),
                        ),
                        pinned: None,
                        host: warm_host.clone(),
                    })
                }
                _ => None,
            };
            report.promoted = record.is_some();
            report.canonical_after = record
                .as_ref()
                .or(current)
                .map(CanonicalSummary::from);
            let decision = report.gate.decision.clone();
            Ok(Change {
                canonical: record,
                history: vec![history_entry(settings, report, &decision)],
            })
        })
        .map_err(|e| {
            // Nothing was written: the warm data goes back to the canonical it was.
            if promote_ran {
                if let Err(se) = runner.settle_promote(ctx, canonical.as_ref()) {
                    tracing::error!(recipe = %name, error = %se, "Cannot put the warm data back; the next run does.");
                }
            }
            state_err(e)
        })?;
    canon_shared::fault::point("promote:canonical");
    canon_shared::fault::point("promote:history");
    if let Some(why) = &promote_failed {
        report.error = Some(why.clone());
        report.exit_code = EXIT_RED;
    }
    let after = committed
        .change
        .canonical
        .as_ref()
        .or(committed.before.as_ref());
    // The order makes a crash at any point repairable (see runners::docker::promote): the warm
    // deploy was healthy, then the canonical and its history line, then the known-good copies go
    // (or, when another host won the race, the warm data goes back to the canonical).
    if promote_ran {
        if let Err(e) = runner.settle_promote(ctx, after) {
            tracing::warn!(recipe = %name, error = %e, "Cannot settle the warm data; the next run does.");
        }
    }
    match (&committed.change.canonical, report.gate.decision.as_str()) {
        (Some(record), _) => println!(
            "canon: PROMOTED {name} to {} (commit {})",
            record.version, record.commit
        ),
        (None, "not-needed") => println!(
            "canon: nothing to promote: {} is already the canonical of {name} at this commit",
            after.map(|c| c.version.to_string()).unwrap_or_default()
        ),
        _ => {
            if report.green {
                tracing::warn!(recipe = %name, reasons = ?report.gate.reasons, "The run is green but the gate refused the promotion.");
            }
        }
    }
    drop(hold);
    drop(lock);
    Ok(())
}

/// Records `entry` in the history alone, under the recipe's lock: a refusal taken before any
/// gate (a tag that did not verify).
fn record_only(
    state: &dyn StateStore,
    settings: &RunSettings,
    entry: HistoryEntry,
) -> Result<(), StateError> {
    let lock = state.lock(&settings.recipe.name, settings.lock_wait)?;
    state.commit(&lock, &mut |_| {
        Ok(Change {
            canonical: None,
            history: vec![entry.clone()],
        })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Mode, RunnerKind};
    use std::path::PathBuf;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        crate::settings::testing::parse(pairs).unwrap()
    }

    #[test]
    fn a_cron_build_selects_the_sweep_with_its_settings() {
        let s = settings(&[
            ("DRONE_BUILD_EVENT", "cron"),
            ("PLUGIN_CONFIG", "enrollment.yml"),
            ("PLUGIN_STATE_DIR", "/var/lib/canon"),
            ("PLUGIN_JOBS", "3"),
            ("PLUGIN_INLINE", "true"),
        ]);
        assert_eq!(s.mode, Mode::Sweep);
        assert_eq!(s.jobs, Some(3));
        assert!(s.inline);
        assert_eq!(s.state_dir, Path::new("/var/lib/canon"));
    }

    #[test]
    fn the_command_runner_is_built_and_the_harness_env_marks_quick_runs() {
        let mut s = settings(&[
            ("PLUGIN_MODE", "tag"),
            ("PLUGIN_CONFIG", "e"),
            ("PLUGIN_RECIPE", "a"),
            ("PLUGIN_TAG", "1.0.0+1"),
            ("PLUGIN_COMMAND", "true"),
        ]);
        assert_eq!(crate::runners::from_settings(&s).unwrap().name(), "command");
        s.runner = RunnerKind::Docker;
        assert_eq!(crate::runners::from_settings(&s).unwrap().name(), "docker");
        s.quick = true;
        let env = harness_env(
            &RunSettings {
                recipe: test_recipe(),
                tested: TestedRef::Tag("1.0.0+1".into()),
                claimed_commits: vec![],
                quick: true,
                warm: true,
                state_dir: PathBuf::from("/s"),
                state_repo: None,
                work_dir: PathBuf::from("/w"),
                keep_work_dir: false,
                lock_wait: LockWait::Fail,
                upstream: GitRemote::local("/u"),
                mirror: GitRemote::local("/m"),
                env: BTreeMap::from([("EXTRA".to_string(), "x".to_string())]),
                build: "9".into(),
                build_link: None,
                trigger: "cli".into(),
                report: None,
            },
            "abc",
            Path::new("/w/checkout"),
            None,
            None,
            false,
        );
        assert_eq!(env["CANON_COLD"], "0");
        assert_eq!(env["CANON_QUICK"], "1");
        assert_eq!(env["CANON_TAG"], "1.0.0+1");
        assert_eq!(env["EXTRA"], "x");
        assert!(!env.contains_key("CANON_UPGRADE_BASE"));
    }

    fn test_recipe() -> Recipe {
        let loc = |u: &str| canon_shared::recipe::RepoLocation {
            url: u.into(),
            full_name: None,
            forge: None,
        };
        Recipe {
            name: canon_shared::recipe::RecipeName::parse("app").unwrap(),
            upstream: loc("/u"),
            mirror: loc("/m"),
            branch: "main".into(),
            required_stages: None,
            test_command: None,
            deploy_timeout_secs: None,
            health_path: None,
            stability_window_secs: None,
            drone_repo: None,
        }
    }
}
