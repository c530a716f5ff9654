//! Every decision over a recipe's canonical: the promote gate, whether a tag is built at all (the
//! listener for a delivered tag, the sweep for the latest release), and the sweep's pick. Pure
//! functions over facts.
//!
//! Nothing here touches git, HTTP, Docker or files. Adapters gather the facts; these functions
//! decide. The gate returns every failing reason, not the first, so an operator reading a refusal
//! sees the whole picture at once.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::commit::CommitId;
use crate::recipe::{Recipe, Stage};
use crate::state::CanonicalRecord;
use crate::version::{Precedence, ReleaseVersion};

/// The outcome of one stage of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    Passed,
    Failed,
    Skipped,
}

impl fmt::Display for StageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StageStatus::Passed => "passed",
            StageStatus::Failed => "failed",
            StageStatus::Skipped => "skipped",
        })
    }
}

/// One stage's result as reported by a runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageResult {
    /// Which stage.
    pub name: Stage,
    /// Its status.
    pub status: StageStatus,
    /// Why it failed or was skipped.
    #[serde(default)]
    pub reason: Option<String>,
    /// How long it took.
    #[serde(default)]
    pub seconds: f64,
    /// What else the runner says about the stage, for people (e.g. which deploy timeout applied
    /// and where it came from); never read by the gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The serving check of a deploying stage that passed it: the request that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<ServingCheck>,
}

/// Where a serving check sent its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServingVia {
    /// To the routed service's tasks, from inside the recipe's `proxy` network.
    Direct,
    /// Through the operator's reverse proxy.
    Proxy,
}

/// The serving check a deploying stage passed: the request of its first route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingCheck {
    /// The host sent in `Host:`.
    pub host: String,
    /// The path requested.
    pub path: String,
    /// The port of the service's tasks.
    pub port: u16,
    /// Where the request went.
    pub via: ServingVia,
    /// The status it answered.
    pub status: u16,
}

/// What was tested: a release tag or another ref (a branch, a PR head).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestedRef {
    /// A tag name as given (it may or may not be a release tag).
    Tag(String),
    /// Any other ref, e.g. `main` or `refs/pull/4/head`.
    Ref(String),
}

impl fmt::Display for TestedRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestedRef::Tag(t) => write!(f, "tag {t}"),
            TestedRef::Ref(r) => write!(f, "ref {r}"),
        }
    }
}

/// Every fact the gate needs about a finished run.
#[derive(Debug, Clone)]
pub struct RunFacts<'a> {
    /// The enrolled recipe, or `None` when the run's recipe is not enrolled.
    pub recipe: Option<&'a Recipe>,
    /// True for a full cold run (fresh deploy, full ladder).
    pub cold: bool,
    /// True for a `--quick` run.
    pub quick: bool,
    /// What was tested.
    pub tested: TestedRef,
    /// The commit that was actually tested.
    pub tested_commit: CommitId,
    /// The commit the tag points to now (peeled), when it could be resolved.
    pub tag_commit_now: Option<CommitId>,
    /// The stage results.
    pub stages: &'a [StageResult],
    /// The canonical before the run.
    pub canonical: Option<&'a CanonicalRecord>,
    /// Problems found outside the stages (the version label does not name the tag, the runner
    /// failed): each one refuses, whatever the stages say.
    pub problems: &'a [String],
}

/// Why the gate refused a promotion. `Display` is a sentence for the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Refusal {
    /// A problem of the run outside its stages, in the run's own words.
    RunProblem {
        problem: String,
    },
    NotEnrolled,
    NotCold,
    Quick,
    StageFailed {
        stage: Stage,
        reason: Option<String>,
    },
    RequiredStageSkipped {
        stage: Stage,
        reason: Option<String>,
    },
    RequiredStageMissing {
        stage: Stage,
    },
    NotATag {
        reference: String,
    },
    NotAReleaseTag {
        tag: String,
        reason: String,
    },
    TagUnresolved {
        tag: String,
    },
    TagMoved {
        tag: String,
        tested: CommitId,
        now: CommitId,
    },
    OlderThanCanonical {
        tag: String,
        canonical: String,
    },
    SameVersionDifferentCommit {
        tag: String,
        canonical_commit: CommitId,
        tested: CommitId,
    },
    VersionConflict {
        tag: String,
        canonical: String,
    },
    Pinned {
        reason: String,
        by: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::RunProblem { problem } => f.write_str(problem),
            Refusal::NotEnrolled => write!(f, "the recipe is not enrolled"),
            Refusal::NotCold => write!(f, "the run was warm, not cold: it started from the canonical's data (only a fresh deploy and the full ladder can promote)"),
            Refusal::Quick => write!(f, "a --quick run never promotes"),
            Refusal::StageFailed { stage, reason } => {
                write!(f, "stage {stage} failed")?;
                reason.iter().try_for_each(|r| write!(f, ": {r}"))
            }
            Refusal::RequiredStageSkipped { stage, reason } => {
                write!(f, "required stage {stage} was skipped")?;
                reason.iter().try_for_each(|r| write!(f, " ({r})"))
            }
            Refusal::RequiredStageMissing { stage } => {
                write!(f, "required stage {stage} did not run")
            }
            Refusal::NotATag { reference } => {
                write!(f, "ref {reference} is not a tag (branches and PR heads never promote)")
            }
            Refusal::NotAReleaseTag { tag, reason } => {
                write!(f, "{tag} is not a release tag: {reason}")
            }
            Refusal::TagUnresolved { tag } => {
                write!(f, "tag {tag} could not be resolved to a commit now")
            }
            Refusal::TagMoved { tag, tested, now } => write!(
                f,
                "tag {tag} now points at {now}, not at the tested commit {tested}"
            ),
            Refusal::OlderThanCanonical { tag, canonical } => write!(
                f,
                "{tag} is older than the canonical {canonical} (the canonical only moves forward)"
            ),
            Refusal::SameVersionDifferentCommit {
                tag,
                canonical_commit,
                tested,
            } => write!(
                f,
                "{tag} is already the canonical at commit {canonical_commit}, but {tested} was tested (the tag moved)"
            ),
            Refusal::VersionConflict { tag, canonical } => write!(
                f,
                "{tag} and the canonical {canonical} share a recipe version; neither is newer"
            ),
            Refusal::Pinned { reason, by } => write!(f, "the recipe is pinned by {by}: {reason}"),
        }
    }
}

/// The gate's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum GateDecision {
    /// Every check holds: promote this version at this commit.
    Promote {
        version: ReleaseVersion,
        commit: CommitId,
    },
    /// The tag is already the canonical at the same commit.
    NotNeeded { version: ReleaseVersion },
    /// At least one check failed; every failing one is listed.
    Refuse { reasons: Vec<Refusal> },
}

impl GateDecision {
    /// Returns the short name used in reports: `promote`, `not-needed` or `refuse`.
    pub fn name(&self) -> &'static str {
        match self {
            GateDecision::Promote { .. } => "promote",
            GateDecision::NotNeeded { .. } => "not-needed",
            GateDecision::Refuse { .. } => "refuse",
        }
    }

    /// Returns every reason as a sentence (empty for a promotion).
    pub fn reasons(&self) -> Vec<String> {
        match self {
            GateDecision::Promote { .. } => Vec::new(),
            GateDecision::NotNeeded { version } => {
                vec![format!("{version} is already the canonical at this commit")]
            }
            GateDecision::Refuse { reasons } => reasons.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Returns the stages a promotion requires: the enrollment's list when it sets one, otherwise
/// `install`, plus `upgrade` when a canonical exists (there is something to upgrade from).
pub fn required_stages(recipe: &Recipe, canonical_exists: bool) -> Vec<Stage> {
    match &recipe.required_stages {
        Some(list) => list.clone(),
        None if canonical_exists => vec![Stage::Install, Stage::Upgrade],
        None => vec![Stage::Install],
    }
}

/// Returns true when every stage passed or was skipped, none failed, and every required stage
/// passed: the run is green.
pub fn is_green(stages: &[StageResult], required: &[Stage]) -> bool {
    stage_refusals(stages, required).is_empty()
}

fn stage_refusals(stages: &[StageResult], required: &[Stage]) -> Vec<Refusal> {
    let mut reasons: Vec<Refusal> = stages
        .iter()
        .filter(|s| s.status == StageStatus::Failed)
        .map(|s| Refusal::StageFailed {
            stage: s.name,
            reason: s.reason.clone(),
        })
        .collect();
    for &stage in required {
        match stages.iter().find(|s| s.name == stage) {
            None => reasons.push(Refusal::RequiredStageMissing { stage }),
            Some(s) if s.status == StageStatus::Skipped => {
                reasons.push(Refusal::RequiredStageSkipped {
                    stage,
                    reason: s.reason.clone(),
                })
            }
            Some(_) => {}
        }
    }
    reasons
}

/// Decides whether a finished run promotes its tag. Promotes only when ALL hold: no problem
/// outside the stages; enrolled; cold and not quick; every required stage passed and none failed;
/// a release tag whose peeled commit is, now, the tested commit; strictly newer than the
/// canonical; not pinned.
pub fn promote_gate(facts: &RunFacts<'_>) -> GateDecision {
    let mut reasons: Vec<Refusal> = facts
        .problems
        .iter()
        .map(|p| Refusal::RunProblem { problem: p.clone() })
        .collect();
    let canonical = facts.canonical;
    match facts.recipe {
        None => reasons.push(Refusal::NotEnrolled),
        Some(recipe) => {
            let required = required_stages(recipe, canonical.is_some());
            reasons.extend(stage_refusals(facts.stages, &required));
        }
    }
    if facts.quick {
        reasons.push(Refusal::Quick);
    } else if !facts.cold {
        reasons.push(Refusal::NotCold);
    }
    let mut version = None;
    match &facts.tested {
        TestedRef::Ref(r) => reasons.push(Refusal::NotATag {
            reference: r.clone(),
        }),
        TestedRef::Tag(tag) => match ReleaseVersion::parse(tag) {
            Err(e) => reasons.push(Refusal::NotAReleaseTag {
                tag: tag.clone(),
                reason: e.to_string(),
            }),
            Ok(v) => {
                match &facts.tag_commit_now {
                    None => reasons.push(Refusal::TagUnresolved { tag: tag.clone() }),
                    Some(now) if !same_commit(now, &facts.tested_commit) => {
                        reasons.push(Refusal::TagMoved {
                            tag: tag.clone(),
                            tested: facts.tested_commit.clone(),
                            now: now.clone(),
                        })
                    }
                    Some(_) => {}
                }
                version = Some(v);
            }
        },
    }
    let mut not_needed = false;
    if let (Some(v), Some(c)) = (&version, canonical) {
        match v.precedence(&c.version) {
            Precedence::Newer => {}
            Precedence::Older => reasons.push(Refusal::OlderThanCanonical {
                tag: v.to_string(),
                canonical: c.version.to_string(),
            }),
            Precedence::Conflict => reasons.push(Refusal::VersionConflict {
                tag: v.to_string(),
                canonical: c.version.to_string(),
            }),
            Precedence::Same if same_commit(&c.commit, &facts.tested_commit) => not_needed = true,
            Precedence::Same => reasons.push(Refusal::SameVersionDifferentCommit {
                tag: v.to_string(),
                canonical_commit: c.commit.clone(),
                tested: facts.tested_commit.clone(),
            }),
        }
    }
    if let Some(pin) = canonical.and_then(|c| c.pinned.as_ref()) {
        reasons.push(Refusal::Pinned {
            reason: pin.reason.clone(),
            by: pin.by.clone(),
        });
    }
    match version {
        Some(version) if reasons.is_empty() && not_needed => GateDecision::NotNeeded { version },
        Some(version) if reasons.is_empty() => GateDecision::Promote {
            version,
            commit: facts.tested_commit.clone(),
        },
        _ => GateDecision::Refuse { reasons },
    }
}

fn same_commit(a: &CommitId, b: &CommitId) -> bool {
    a.same_object(b)
}

/// Why a release tag is not built (by the listener for a delivered tag, by the sweep for the
/// latest upstream release).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SkipReason {
    /// The sweep found no release tag upstream.
    NeverReleased,
    /// The recipe is pinned: nothing is built until it is unpinned.
    Pinned { reason: String, by: String },
    /// The tag is the canonical, at the same commit.
    AlreadyCanonical { tag: String },
    /// The tag is older than the canonical.
    Older { tag: String, canonical: String },
    /// The tag and the canonical share a recipe version with different upstream parts.
    VersionConflict { tag: String, canonical: String },
    /// The tag is the canonical's version but points at another commit now.
    TagMoved {
        tag: String,
        canonical_commit: CommitId,
        upstream_commit: CommitId,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NeverReleased => write!(f, "never released (no release tag upstream)"),
            SkipReason::Pinned { reason, by } => write!(f, "pinned by {by}: {reason}"),
            SkipReason::AlreadyCanonical { tag } => write!(
                f,
                "no new version ({tag} is the canonical): a tag already the canonical at its commit is not built again"
            ),
            SkipReason::Older { tag, canonical } => write!(
                f,
                "{tag} is older than the canonical {canonical}: no new version, a tag not newer than the canonical is not built"
            ),
            SkipReason::VersionConflict { tag, canonical } => write!(
                f,
                "{tag} conflicts with the canonical {canonical} (same recipe version, different upstream part): not newer than the canonical, not built"
            ),
            SkipReason::TagMoved {
                tag,
                canonical_commit,
                upstream_commit,
            } => write!(
                f,
                "tag {tag} moved upstream from {canonical_commit} to {upstream_commit}; the canonical keeps the tested commit until a newer release"
            ),
        }
    }
}

/// Whether a release tag is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum BuildDecision {
    /// Test (and maybe promote) the tag.
    Build,
    /// Not built, with the reason (recorded, never silent).
    Skip { reason: SkipReason },
}

/// Decides whether release tag `tag`, pointing at `commit` upstream now, is worth a cold run:
/// only when the recipe is not pinned and the tag is strictly newer than the canonical (or there
/// is no canonical yet). The listener asks this for every delivered tag, the sweep for the latest
/// upstream release; the promote gate checks the same facts again after the run.
pub fn build_decision(
    tag: &ReleaseVersion,
    commit: &CommitId,
    canonical: Option<&CanonicalRecord>,
) -> BuildDecision {
    let Some(c) = canonical else {
        return BuildDecision::Build;
    };
    let skip = |reason| BuildDecision::Skip { reason };
    if let Some(pin) = &c.pinned {
        return skip(SkipReason::Pinned {
            reason: pin.reason.clone(),
            by: pin.by.clone(),
        });
    }
    match tag.precedence(&c.version) {
        Precedence::Newer => BuildDecision::Build,
        Precedence::Same if same_commit(&c.commit, commit) => skip(SkipReason::AlreadyCanonical {
            tag: tag.to_string(),
        }),
        Precedence::Same => skip(SkipReason::TagMoved {
            tag: tag.to_string(),
            canonical_commit: c.commit.clone(),
            upstream_commit: commit.clone(),
        }),
        Precedence::Older => skip(SkipReason::Older {
            tag: tag.to_string(),
            canonical: c.version.to_string(),
        }),
        Precedence::Conflict => skip(SkipReason::VersionConflict {
            tag: tag.to_string(),
            canonical: c.version.to_string(),
        }),
    }
}

/// The sweep's decision for one recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum SweepDecision {
    /// Test (and maybe promote) this tag.
    Run { tag: ReleaseVersion },
    /// Nothing to do, with the reason.
    Skip { reason: SkipReason },
}

/// Decides whether the sweep runs the latest upstream release: [`build_decision`] for it, or a
/// skip when upstream has no release tag. `latest` carries the tag and the commit it points to
/// upstream now.
pub fn sweep_decision(
    latest: Option<(&ReleaseVersion, &CommitId)>,
    canonical: Option<&CanonicalRecord>,
) -> SweepDecision {
    let Some((tag, commit)) = latest else {
        return SweepDecision::Skip {
            reason: SkipReason::NeverReleased,
        };
    };
    match build_decision(tag, commit, canonical) {
        BuildDecision::Build => SweepDecision::Run { tag: tag.clone() },
        BuildDecision::Skip { reason } => SweepDecision::Skip { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{RecipeName, RepoLocation};
    use crate::state::Pin;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn id(text: &str) -> CommitId {
        CommitId::parse(text).expect("a full commit id")
    }

    fn recipe(required: Option<Vec<Stage>>) -> Recipe {
        let loc = |u: &str| RepoLocation {
            url: u.into(),
            full_name: None,
            forge: None,
        };
        Recipe {
            name: RecipeName::parse("app").unwrap(),
            upstream: loc("/up"),
            mirror: loc("/mirror"),
            branch: "main".into(),
            required_stages: required,
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

    fn canonical(version: &str, commit: &str, pinned: bool) -> CanonicalRecord {
        CanonicalRecord {
            recipe: RecipeName::parse("app").unwrap(),
            version: ReleaseVersion::parse(version).unwrap(),
            commit: id(commit),
            promoted_at: crate::state::now(),
            build: None,
            pinned: pinned.then(|| Pin {
                reason: "migration".into(),
                by: "ops".into(),
                at: crate::state::now(),
            }),
            host: None,
        }
    }

    fn stage(name: Stage, status: StageStatus) -> StageResult {
        StageResult {
            name,
            status,
            reason: (status != StageStatus::Passed).then(|| format!("{name} {status}")),
            seconds: 1.0,
            notes: Vec::new(),
            serving: None,
        }
    }

    fn green(with_upgrade: bool) -> Vec<StageResult> {
        let mut v = vec![stage(Stage::Install, StageStatus::Passed)];
        v.push(stage(
            Stage::Upgrade,
            if with_upgrade {
                StageStatus::Passed
            } else {
                StageStatus::Skipped
            },
        ));
        v.push(stage(Stage::Backup, StageStatus::Skipped));
        v
    }

    struct Case {
        name: &'static str,
        enrolled: bool,
        cold: bool,
        quick: bool,
        tested: TestedRef,
        tested_commit: &'static str,
        now: Option<&'static str>,
        stages: Vec<StageResult>,
        required: Option<Vec<Stage>>,
        canonical: Option<CanonicalRecord>,
        want: &'static str,
        want_reasons: Vec<&'static str>,
        problems: Vec<String>,
    }

    fn base(name: &'static str) -> Case {
        Case {
            name,
            enrolled: true,
            cold: true,
            quick: false,
            tested: TestedRef::Tag("1.1.0+2.0".into()),
            tested_commit: A,
            now: Some(A),
            stages: green(true),
            required: None,
            canonical: Some(canonical("1.0.0+1.0", B, false)),
            want: "promote",
            want_reasons: vec![],
            problems: vec![],
        }
    }

    fn run(c: &Case) -> GateDecision {
        let r = recipe(c.required.clone());
        promote_gate(&RunFacts {
            recipe: c.enrolled.then_some(&r),
            cold: c.cold,
            quick: c.quick,
            tested: c.tested.clone(),
            tested_commit: id(c.tested_commit),
            tag_commit_now: c.now.map(id),
            stages: &c.stages,
            canonical: c.canonical.as_ref(),
            problems: &c.problems,
        })
    }

    #[test]
    fn gate_table() {
        let cases = vec![
            base("green newer tag promotes"),
            Case {
                canonical: None,
                stages: green(false),
                ..base("first canonical needs only install")
            },
            Case {
                stages: green(false),
                want: "refuse",
                want_reasons: vec!["required stage upgrade was skipped"],
                ..base("upgrade required once a canonical exists")
            },
            Case {
                stages: vec![stage(Stage::Upgrade, StageStatus::Passed)],
                want: "refuse",
                want_reasons: vec!["required stage install did not run"],
                ..base("missing install refuses")
            },
            Case {
                stages: {
                    let mut s = green(true);
                    s.push(stage(Stage::Custom, StageStatus::Failed));
                    s
                },
                want: "refuse",
                want_reasons: vec!["stage custom failed: custom failed"],
                ..base("an optional failed stage still refuses")
            },
            Case {
                required: Some(vec![Stage::Install, Stage::Backup]),
                want: "refuse",
                want_reasons: vec!["required stage backup was skipped"],
                ..base("enrollment overrides the required list")
            },
            Case {
                required: Some(vec![Stage::Install]),
                stages: green(false),
                ..base("enrollment may drop upgrade")
            },
            Case {
                quick: true,
                want: "refuse",
                want_reasons: vec!["--quick"],
                ..base("quick never promotes")
            },
            Case {
                cold: false,
                want: "refuse",
                want_reasons: vec!["not cold"],
                ..base("warm never promotes")
            },
            Case {
                tested: TestedRef::Ref("main".into()),
                want: "refuse",
                want_reasons: vec!["ref main is not a tag"],
                ..base("branch never promotes")
            },
            Case {
                tested: TestedRef::Tag("v1.2.0".into()),
                want: "refuse",
                want_reasons: vec!["v1.2.0 is not a release tag"],
                ..base("legacy tag never promotes")
            },
            Case {
                now: Some(B),
                want: "refuse",
                want_reasons: vec!["now points at bbbb"],
                ..base("tag moved since the test")
            },
            Case {
                now: None,
                want: "refuse",
                want_reasons: vec!["could not be resolved"],
                ..base("unresolvable tag")
            },
            Case {
                canonical: Some(canonical("1.1.0+2.0", A, false)),
                want: "not-needed",
                ..base("same version and commit: nothing to do")
            },
            Case {
                canonical: Some(canonical("1.1.0+2.0", B, false)),
                want: "refuse",
                want_reasons: vec!["already the canonical at commit bbbb"],
                ..base("same version other commit")
            },
            Case {
                canonical: Some(canonical("2.0.0+1.0", B, false)),
                want: "refuse",
                want_reasons: vec!["older than the canonical 2.0.0+1.0"],
                ..base("older refused")
            },
            Case {
                canonical: Some(canonical("1.1.0+1.9", B, false)),
                want: "refuse",
                want_reasons: vec!["share a recipe version"],
                ..base("conflict refused")
            },
            Case {
                canonical: Some(canonical("1.0.0+1.0", B, true)),
                want: "refuse",
                want_reasons: vec!["pinned by ops: migration"],
                ..base("pinned refused")
            },
            Case {
                enrolled: false,
                want: "refuse",
                want_reasons: vec!["not enrolled"],
                ..base("not enrolled refused")
            },
            Case {
                problems: vec!["compose.yml has no version label".into()],
                want: "refuse",
                want_reasons: vec!["compose.yml has no version label"],
                ..base("a problem outside the stages refuses a green run")
            },
            Case {
                canonical: Some(canonical("1.1.0+2.0", A, false)),
                problems: vec!["the docker runner failed: boom".into()],
                want: "refuse",
                want_reasons: vec!["the docker runner failed: boom"],
                ..base("a problem refuses even when nothing would be promoted")
            },
            Case {
                quick: true,
                tested: TestedRef::Ref("refs/pull/4/head".into()),
                now: None,
                stages: vec![stage(Stage::Install, StageStatus::Failed)],
                canonical: Some(canonical("1.0.0+1.0", B, true)),
                want: "refuse",
                want_reasons: vec![
                    "stage install failed",
                    "required stage upgrade did not run",
                    "--quick",
                    "refs/pull/4/head is not a tag",
                    "pinned",
                ],
                ..base("every failing reason is reported")
            },
        ];
        for c in &cases {
            let d = run(c);
            assert_eq!(d.name(), c.want, "{}: {d:?}", c.name);
            let reasons = d.reasons();
            if c.want == "refuse" {
                assert_eq!(
                    reasons.len(),
                    c.want_reasons.len(),
                    "{}: {reasons:?}",
                    c.name
                );
            }
            for want in &c.want_reasons {
                assert!(
                    reasons.iter().any(|r| r.contains(want)),
                    "{}: no reason contains {want:?}: {reasons:?}",
                    c.name
                );
            }
            if let GateDecision::Promote { version, commit } = &d {
                assert_eq!(version.to_string(), "1.1.0+2.0");
                assert_eq!(commit, A);
            }
        }
    }

    #[test]
    fn green_means_no_failure_and_required_passed() {
        assert!(is_green(&green(true), &[Stage::Install, Stage::Upgrade]));
        assert!(!is_green(&green(false), &[Stage::Install, Stage::Upgrade]));
        assert!(!is_green(&[], &[Stage::Install]));
    }

    #[test]
    fn sweep_decision_table() {
        let v = |s: &str| ReleaseVersion::parse(s).unwrap();
        let new = v("2.0.0+1");
        let same = v("1.0.0+1.0");
        let old = v("0.9.0+1");
        type Latest<'a> = Option<(&'a ReleaseVersion, &'a str)>;
        let cases: Vec<(&str, Latest, Option<CanonicalRecord>, &str)> = vec![
            ("never released", None, None, "never released"),
            ("first release runs", Some((&new, A)), None, "run 2.0.0+1"),
            (
                "newer runs",
                Some((&new, A)),
                Some(canonical("1.0.0+1.0", B, false)),
                "run 2.0.0+1",
            ),
            (
                "same skips",
                Some((&same, B)),
                Some(canonical("1.0.0+1.0", B, false)),
                "no new version (1.0.0+1.0 is the canonical)",
            ),
            (
                "older skips",
                Some((&old, A)),
                Some(canonical("1.0.0+1.0", B, false)),
                "not newer than the canonical",
            ),
            (
                "moved tag skips loudly",
                Some((&same, A)),
                Some(canonical("1.0.0+1.0", B, false)),
                "moved upstream",
            ),
            (
                "pinned skips",
                Some((&new, A)),
                Some(canonical("1.0.0+1.0", B, true)),
                "pinned by ops",
            ),
        ];
        for (name, latest, canonical, want) in cases {
            let latest = latest.map(|(tag, commit)| (tag, id(commit)));
            let latest = latest.as_ref().map(|(tag, commit)| (*tag, commit));
            let got = match sweep_decision(latest, canonical.as_ref()) {
                SweepDecision::Run { tag } => format!("run {tag}"),
                SweepDecision::Skip { reason } => reason.to_string(),
            };
            assert!(got.contains(want), "{name}: {got}");
        }
    }

    #[test]
    fn build_decision_table() {
        let v = |s: &str| ReleaseVersion::parse(s).unwrap();
        let upper_b = B.to_ascii_uppercase();
        let cases: Vec<(&str, ReleaseVersion, &str, Option<CanonicalRecord>, &str)> = vec![
            ("no canonical builds", v("1.0.0+1"), A, None, "build"),
            (
                "newer builds",
                v("2.0.0+1"),
                A,
                Some(canonical("1.0.0+1.0", B, false)),
                "build",
            ),
            (
                "a pinned recipe's newer tag is skipped as pinned",
                v("2.0.0+1"),
                A,
                Some(canonical("1.0.0+1.0", B, true)),
                "pinned by ops: migration",
            ),
            (
                "the canonical itself is not built again",
                v("1.0.0+1.0"),
                B,
                Some(canonical("1.0.0+1.0", B, false)),
                "already the canonical",
            ),
            (
                "commits compare without regard to case",
                v("1.0.0+1.0"),
                &upper_b,
                Some(canonical("1.0.0+1.0", B, false)),
                "already the canonical",
            ),
            (
                "the canonical's tag at another commit is a moved tag",
                v("1.0.0+1.0"),
                A,
                Some(canonical("1.0.0+1.0", B, false)),
                "moved upstream",
            ),
            (
                "older is skipped",
                v("0.9.0+1"),
                A,
                Some(canonical("1.0.0+1.0", B, false)),
                "older than the canonical 1.0.0+1.0",
            ),
            (
                "a version conflict is skipped",
                v("1.0.0+2.0"),
                A,
                Some(canonical("1.0.0+1.0", B, false)),
                "conflicts with the canonical 1.0.0+1.0",
            ),
        ];
        for (name, tag, commit, canonical, want) in cases {
            let got = match build_decision(&tag, &id(commit), canonical.as_ref()) {
                BuildDecision::Build => "build".to_string(),
                BuildDecision::Skip { reason } => reason.to_string(),
            };
            assert!(got.contains(want), "{name}: {got}");
        }
    }
}
