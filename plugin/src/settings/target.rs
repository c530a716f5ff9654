//! Tag mode's target: the mode, the recipe, the tag or ref to test, and every commit the build
//! claims for the tag.
//!
//! Separate from the rest of validation because these values decide what is tested and whether
//! the result may promote: the gate trusts them, so their sources and precedence (flags, then
//! `PLUGIN_*`, then the listener's `CANON_*` parameters, then `DRONE_*`) live in one place.

use canon_shared::gate::TestedRef;
use canon_shared::recipe::RecipeName;

use super::environment::{drone_value, DroneMeta};
use super::{ClaimedCommit, Mode, Problems, RawSettings};
use canon_shared::settings::parse_commit;

/// What the build asks to test, before the mode is known: the tag from wherever it came, the tag
/// Drone set (only on `refs/tags/*` builds) and the ref.
pub(super) struct Requested {
    /// `tag`, else `CANON_TAG` (the listener's parameter), else `DRONE_TAG`.
    pub(super) tag: Option<String>,
    /// `DRONE_TAG`: set only when this build is the tag's own build.
    pub(super) drone_tag: Option<String>,
    /// `ref`, else on a pull request or branch build `DRONE_COMMIT_REF`.
    pub(super) git_ref: Option<String>,
    /// True when the ref is the build's own (`DRONE_COMMIT_REF` of a `pull_request` or `push`
    /// build): `DRONE_COMMIT_SHA` is then its commit.
    pub(super) drone_ref: bool,
}

/// Returns true for the Drone events of a pull request or a branch push: a ref run of the
/// build's own ref and commit.
pub(super) fn is_ref_event(event: Option<&str>) -> bool {
    matches!(event, Some("pull_request" | "push"))
}

impl Requested {
    /// Picks the tag and records a problem when `CANON_TAG` and `DRONE_TAG` disagree with no
    /// `tag` setting to settle it.
    pub(super) fn resolve(
        raw: &RawSettings,
        d: &DroneMeta,
        event: Option<&str>,
        problems: &mut Problems,
    ) -> Requested {
        let canon_tag = drone_value(&d.canon_tag);
        let drone_tag = drone_value(&d.drone_tag);
        if let (None, Some(a), Some(b)) = (raw.get("tag"), &canon_tag, &drone_tag) {
            if a != b {
                problems.push(format!(
                    "CANON_TAG={a} and DRONE_TAG={b} disagree; set `tag` to say which one to test"
                ));
            }
        }
        let tag = raw.text("tag").or(canon_tag).or(drone_tag.clone());
        // A pull request or branch build tests its own ref, unless a tag or ref is set.
        let drone_ref = is_ref_event(event)
            && tag.is_none()
            && raw.get("ref").is_none()
            && drone_value(&d.drone_commit_ref).is_some();
        Requested {
            tag,
            drone_tag,
            git_ref: if drone_ref {
                drone_value(&d.drone_commit_ref)
            } else {
                raw.text("ref")
            },
            drone_ref,
        }
    }
}

/// Returns the mode: the one a subcommand forces, else `mode`, else the one
/// `DRONE_BUILD_EVENT` picks (`None` after recording why none could be picked).
pub(super) fn mode(
    forced: Option<Mode>,
    setting: Option<&str>,
    event: Option<&str>,
    requested: &Requested,
    problems: &mut Problems,
) -> Option<Mode> {
    match (forced, setting.map(str::trim)) {
        (Some(m), _) => Some(m),
        (None, Some("tag")) => Some(Mode::Tag),
        (None, Some("sweep")) => Some(Mode::Sweep),
        (None, Some(other)) => {
            problems.push(format!("`mode` must be tag or sweep, not {other:?}"));
            None
        }
        (None, None) => mode_from_event(event, requested, problems),
    }
}

/// Returns the mode a Drone build event picks when `mode` is unset.
fn mode_from_event(
    event: Option<&str>,
    requested: &Requested,
    problems: &mut Problems,
) -> Option<Mode> {
    let has_tag = requested.tag.is_some();
    match event {
        Some("cron") => Some(Mode::Sweep),
        Some("tag") if has_tag => Some(Mode::Tag),
        Some("custom") if has_tag || requested.git_ref.is_some() => Some(Mode::Tag),
        Some("pull_request" | "push") if has_tag || requested.git_ref.is_some() => Some(Mode::Tag),
        Some(event @ ("pull_request" | "push")) => {
            problems.push(format!(
                "DRONE_BUILD_EVENT={event} but no DRONE_COMMIT_REF: set `ref` to say what to test"
            ));
            None
        }
        Some(event @ ("tag" | "custom")) => {
            problems.push(format!(
                "DRONE_BUILD_EVENT={event} but no tag: set `tag` (or the CANON_TAG build parameter) or `ref`"
            ));
            None
        }
        Some(other) => {
            problems.push(format!(
                "DRONE_BUILD_EVENT={other} does not pick a mode (tag and custom builds run tag mode, pull request and push builds a ref run, cron builds the sweep); set `mode`"
            ));
            None
        }
        None => {
            problems.push(
                "no mode: not a Drone build (DRONE_BUILD_EVENT is unset) and `mode` is unset; use `canon-plugin run` or `canon-plugin sweep`",
            );
            None
        }
    }
}

/// Returns whether a recipe was given (`recipe`, else `CANON_RECIPE`) and its name when valid.
pub(super) fn recipe(
    raw: &RawSettings,
    d: &DroneMeta,
    problems: &mut Problems,
) -> (bool, Option<RecipeName>) {
    let Some(given) = raw.text("recipe").or(drone_value(&d.canon_recipe)) else {
        return (false, None);
    };
    let name = RecipeName::parse(given.trim()).map_err(|e| format!("`recipe`: {e}"));
    (true, problems.check(name))
}

/// Returns what tag mode tests and every commit the build claims for it. `recipe_known` says
/// whether a recipe was given or can be found from `drone_repo`; without one, that is recorded.
pub(super) fn tag_mode_target(
    raw: &RawSettings,
    d: &DroneMeta,
    requested: &Requested,
    recipe_known: bool,
    problems: &mut Problems,
) -> (Option<TestedRef>, Vec<ClaimedCommit>) {
    if !recipe_known {
        problems.push("`recipe` (PLUGIN_RECIPE, CANON_RECIPE or --recipe) is required in tag mode");
    }
    // A tag given by hand (`--tag`, PLUGIN_TAG) must be a release tag: a typo such as `v1.1.0`
    // is refused before anything runs or is recorded. A tag Drone or the listener names is
    // tested as it is, and the gate records why it is not promoted.
    if let Some(tag) = raw.text("tag") {
        if let Err(why) = canon_shared::version::ReleaseVersion::parse(tag.trim()) {
            problems.push(format!(
                "`tag`: {:?} is not a release tag: {why}",
                tag.trim()
            ));
        }
    }
    (
        tested_ref(requested, problems),
        claimed_commits(raw, d, requested, problems),
    )
}

/// Returns what tag mode tests: the tag or the ref, exactly one, with a valid git name.
fn tested_ref(requested: &Requested, problems: &mut Problems) -> Option<TestedRef> {
    match (&requested.tag, &requested.git_ref) {
        (Some(_), Some(_)) => {
            problems.push("give `tag` or `ref`, not both");
            None
        }
        (None, None) => {
            problems.push("tag mode needs `tag` (or CANON_TAG, DRONE_TAG) or `ref`");
            None
        }
        (Some(t), None) => {
            let t = t.trim();
            if git2::Reference::is_valid_name(&format!("refs/tags/{t}")) {
                Some(TestedRef::Tag(t.to_string()))
            } else {
                problems.push(format!("`tag`: {t:?} is not a valid tag name"));
                None
            }
        }
        (None, Some(r)) => {
            let r = r.trim();
            let full = if r.starts_with("refs/") {
                r.to_string()
            } else {
                format!("refs/heads/{r}")
            };
            if git2::Reference::is_valid_name(&full) {
                Some(TestedRef::Ref(r.to_string()))
            } else {
                problems.push(format!("`ref`: {r:?} is not a valid ref name"));
                None
            }
        }
    }
}

/// Returns every commit the build claims for the tag or ref: `commit`, `CANON_COMMIT`, and
/// `DRONE_COMMIT_SHA` when this build is the tag's own build or the pull request's or branch's
/// own build.
fn claimed_commits(
    raw: &RawSettings,
    d: &DroneMeta,
    requested: &Requested,
    problems: &mut Problems,
) -> Vec<ClaimedCommit> {
    // DRONE_COMMIT_SHA is the tag's commit only when this build is the tag's build.
    let tag_build = requested.drone_tag.is_some()
        && requested.tag == requested.drone_tag
        && requested.git_ref.is_none();
    let own_build = tag_build || requested.drone_ref;
    let sources = [
        ("commit", raw.text("commit")),
        ("CANON_COMMIT", drone_value(&d.canon_commit)),
        (
            "DRONE_COMMIT_SHA",
            drone_value(&d.drone_commit_sha).filter(|_| own_build),
        ),
    ];
    let mut claimed = Vec::new();
    for (source, value) in sources {
        let Some(v) = value else { continue };
        match parse_commit(&v) {
            Some(commit) => claimed.push(ClaimedCommit { source, commit }),
            None => problems.push(format!(
                "{source}: {:?} is not a full commit id (40 or 64 hex digits)",
                v.trim()
            )),
        }
    }
    claimed
}

#[cfg(test)]
mod tests {
    use crate::settings::testing::{env, parse};
    use std::path::Path;

    use super::*;
    use crate::settings::Settings;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn a_tag_build_claims_drone_commit_sha() {
        let s = parse(&[
            ("DRONE_BUILD_EVENT", "tag"),
            ("DRONE_TAG", "1.0.0+1"),
            ("DRONE_COMMIT_SHA", &SHA.to_uppercase()),
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_RECIPE", "app"),
            ("PLUGIN_RUNNER", "docker"),
        ])
        .unwrap();
        assert_eq!(s.tested, Some(TestedRef::Tag("1.0.0+1".into())));
        assert_eq!(s.claimed_commits[0].source, "DRONE_COMMIT_SHA");
        assert_eq!(s.claimed_commits[0].commit, SHA);
    }

    #[test]
    fn cron_is_the_sweep_and_mode_wins_over_the_event() {
        let s = parse(&[
            ("DRONE_BUILD_EVENT", "cron"),
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_JOBS", "4"),
            ("PLUGIN_DRY_RUN", "true"),
        ])
        .unwrap();
        assert_eq!((s.mode, s.jobs, s.dry_run), (Mode::Sweep, Some(4), true));
        let s = parse(&[
            ("DRONE_BUILD_EVENT", "push"),
            ("PLUGIN_MODE", "sweep"),
            ("PLUGIN_CONFIG", "e.yml"),
        ])
        .unwrap();
        assert_eq!(s.mode, Mode::Sweep);
    }

    #[test]
    fn pull_request_and_push_builds_test_their_own_ref_and_commit_warm_unless_told() {
        for (event, git_ref) in [
            ("pull_request", "refs/pull/4/head"),
            ("push", "refs/heads/feature"),
        ] {
            let s = parse(&[
                ("DRONE_BUILD_EVENT", event),
                ("DRONE_COMMIT_REF", git_ref),
                ("DRONE_COMMIT_SHA", SHA),
                ("DRONE_REPO", "mirrors/app"),
                ("PLUGIN_CONFIG", "e.yml"),
            ])
            .unwrap();
            assert_eq!(s.mode, Mode::Tag, "{event}");
            assert_eq!(s.tested, Some(TestedRef::Ref(git_ref.into())), "{event}");
            assert_eq!(s.claimed_commits.len(), 1, "{event}");
            assert_eq!(s.claimed_commits[0].source, "DRONE_COMMIT_SHA");
            assert_eq!(s.claimed_commits[0].commit, SHA);
            assert!(s.warm, "{event}: warm is the default");
        }
        let s = parse(&[
            ("DRONE_BUILD_EVENT", "pull_request"),
            ("DRONE_COMMIT_REF", "refs/pull/4/head"),
            ("DRONE_COMMIT_SHA", SHA),
            ("PLUGIN_RECIPE", "app"),
            ("PLUGIN_WARM", "false"),
            ("PLUGIN_CONFIG", "e.yml"),
        ])
        .unwrap();
        assert!(!s.warm);
        let cli = RawSettings {
            cold: true,
            ..Default::default()
        };
        let e = env(&[
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_RECIPE", "app"),
            ("PLUGIN_REF", "main"),
            ("PLUGIN_WARM", "true"),
        ]);
        let s = Settings::parse(&e, Some(cli), Some(Mode::Tag), Path::new("/w")).unwrap();
        assert!(!s.warm, "--cold wins over PLUGIN_WARM");
        let err = parse(&[
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_RECIPE", "app"),
            ("PLUGIN_MODE", "tag"),
            ("PLUGIN_REF", "main"),
            ("PLUGIN_WARM", "sometimes"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("`warm` must be true or false"),
            "{err}"
        );
    }

    #[test]
    fn events_that_pick_no_mode_are_explained() {
        let err = parse(&[("DRONE_BUILD_EVENT", "push"), ("PLUGIN_CONFIG", "e")]).unwrap_err();
        assert!(err
            .to_string()
            .contains("DRONE_BUILD_EVENT=push but no DRONE_COMMIT_REF"));
        let err = parse(&[("DRONE_BUILD_EVENT", "promote"), ("PLUGIN_CONFIG", "e")]).unwrap_err();
        assert!(err
            .to_string()
            .contains("DRONE_BUILD_EVENT=promote does not pick a mode"));
        let err = parse(&[("DRONE_BUILD_EVENT", "custom"), ("PLUGIN_CONFIG", "e")]).unwrap_err();
        assert!(err.to_string().contains("but no tag"));
        let err = parse(&[("PLUGIN_CONFIG", "e")]).unwrap_err();
        assert!(err.to_string().contains("not a Drone build"));
    }

    #[test]
    fn flags_win_over_plugin_env_and_tag_and_ref_exclude_each_other() {
        let e = env(&[
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_RECIPE", "from-env"),
            ("PLUGIN_COMMAND", "true"),
        ]);
        let cli = RawSettings::from_values([("recipe", "from-flag"), ("ref", "main")]);
        let s = Settings::parse(&e, Some(cli), Some(Mode::Tag), Path::new("/w")).unwrap();
        assert_eq!(s.recipe.unwrap().as_str(), "from-flag");
        assert_eq!(s.tested, Some(TestedRef::Ref("main".into())));
        let cli = RawSettings::from_values([("tag", "1.0.0+1"), ("ref", "main")]);
        let err = Settings::parse(&e, Some(cli), Some(Mode::Tag), Path::new("/w")).unwrap_err();
        assert!(err.to_string().contains("not both"));
    }
}
