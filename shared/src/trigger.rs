//! The one trigger path: sync and tidy a recipe's mirror, then start its Drone build once.
//!
//! Three callers notice a release tag and want it built: the listener's worker (a webhook), the
//! weekly sweep (the safety net) and `mirror-sync` (the mirror half only). Each keeps its own
//! decision, logging and reporting; the steps they share live here so a tag is synced and started
//! the same way whoever noticed it:
//!
//! 1. [`sync_request`] names a recipe's upstream, mirror, branch and bare cache.
//! 2. [`sync_mirror`] runs the blocking git sync on a blocking thread; [`MirrorPrs::close_merged`]
//!    then closes the mirror PRs whose head upstream has merged. [`sync_and_tidy`] does both.
//! 3. [`start_build_once`] finds a build already started for the same recipe, tag and commit
//!    (pending, running or green) and starts one only when there is none. That lookup is what
//!    keeps a tag from being built twice when a process died between starting a build and
//!    recording it.
//!
//! Separate from [`crate::mirror`] and [`crate::drone`] because it composes them with the
//! enrollment's per-recipe choices (cache folder, own Drone repository); it reads no settings.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::drone::{Build, BuildParams, DroneClient, DroneError};
use crate::forge::{self, Forge, ForgeError, ForgeKind};
use crate::mirror::{self, CloseReport, Credentials, MirrorError, SyncReport, SyncRequest};
use crate::recipe::Recipe;
use crate::secret::Secret;

/// Returns what syncing `recipe`'s mirror means: its upstream and mirror remotes with
/// `credentials`, its branch, and its bare cache under the state directory `state_root`.
pub fn sync_request(recipe: &Recipe, credentials: &Credentials, state_root: &Path) -> SyncRequest {
    SyncRequest {
        upstream: credentials.upstream(recipe),
        mirror: credentials.mirror(recipe),
        branch: recipe.branch.clone(),
        cache_dir: mirror::cache_dir(state_root, &recipe.name),
    }
}

/// Why a mirror sync did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The blocking thread that ran the sync failed (it panicked or was cancelled).
    #[error("{0}")]
    Task(tokio::task::JoinError),
    /// The sync itself failed.
    #[error(transparent)]
    Mirror(#[from] MirrorError),
}

/// Syncs the mirror `request` names (see [`mirror::sync`]) on a blocking thread, so an async
/// caller's runtime keeps serving while git works.
pub async fn sync_mirror(request: SyncRequest) -> Result<SyncReport, SyncError> {
    tokio::task::spawn_blocking(move || mirror::sync(&request))
        .await
        .map_err(SyncError::Task)?
        .map_err(SyncError::Mirror)
}

/// A mirror's pull requests on its forge: where PRs merged upstream are closed after a sync.
#[derive(Clone)]
pub struct MirrorPrs {
    forge: Arc<dyn Forge>,
    repo: String,
}

impl std::fmt::Debug for MirrorPrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorPrs")
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl MirrorPrs {
    /// Returns the PRs of the mirror `repo` (`owner/name`) on `forge`.
    pub fn new(forge: Arc<dyn Forge>, repo: impl Into<String>) -> Self {
        Self {
            forge,
            repo: repo.into(),
        }
    }

    /// Returns the PRs of the mirror `repo` (`owner/name`) on the forge at `base` (its kind
    /// guessed from the URL, [`ForgeKind::guess`]), authenticated by the mirror token `token`.
    pub fn on(base: &str, repo: impl Into<String>, token: Secret) -> Result<Self, ForgeError> {
        let forge = forge::client(ForgeKind::guess(base), base, Some(token))?;
        Ok(Self::new(forge, repo))
    }

    /// Returns the mirror's `owner/name`.
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// Closes the open PRs whose head commit the sync `synced` found on the upstream branch
    /// (see [`mirror::close_merged_prs`]); `cache_dir` is the cache that sync filled.
    pub async fn close_merged(
        &self,
        cache_dir: &Path,
        synced: &SyncReport,
    ) -> Result<CloseReport, MirrorError> {
        mirror::close_merged_prs(
            self.forge.as_ref(),
            &self.repo,
            cache_dir,
            &synced.upstream_head,
        )
        .await
    }
}

/// A synced and tidied mirror.
#[derive(Debug)]
pub struct Tidied {
    /// What the sync did.
    pub sync: SyncReport,
    /// How long the sync took, from the caller's side (the PR step not included).
    pub synced_in: Duration,
    /// The PR step: `None` when no [`MirrorPrs`] were given, else what closing returned. A
    /// failure here leaves the sync standing: a release build must not wait on PR housekeeping.
    pub prs: Option<Result<CloseReport, MirrorError>>,
}

/// Syncs the mirror `request` names, then, when `prs` is given, closes its PRs merged upstream.
/// Fails only when the sync fails.
pub async fn sync_and_tidy(
    request: SyncRequest,
    prs: Option<&MirrorPrs>,
) -> Result<Tidied, SyncError> {
    let cache_dir = request.cache_dir.clone();
    let started = Instant::now();
    let sync = sync_mirror(request).await?;
    let synced_in = started.elapsed();
    let prs = match prs {
        Some(prs) => Some(prs.close_merged(&cache_dir, &sync).await),
        None => None,
    };
    Ok(Tidied {
        sync,
        synced_in,
        prs,
    })
}

/// A build for a recipe, tag and commit that now exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOnce {
    /// A build with the same parameters was already pending, running or green: none started.
    Found(Build),
    /// No such build existed: this one was started now.
    Started(Build),
}

impl BuildOnce {
    /// Returns the build, found or started.
    pub fn build(&self) -> &Build {
        match self {
            BuildOnce::Found(b) | BuildOnce::Started(b) => b,
        }
    }

    /// Returns the build, found or started, by value.
    pub fn into_build(self) -> Build {
        match self {
            BuildOnce::Found(b) | BuildOnce::Started(b) => b,
        }
    }
}

/// Why [`start_build_once`] did not get a build.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The recipe's own Drone repository (`drone_repo` in the enrollment) is not usable.
    #[error(transparent)]
    DroneRepo(DroneError),
    /// Drone failed to list builds or to start one.
    #[error(transparent)]
    Drone(DroneError),
}

/// Returns the Drone client that builds `recipe`: `drone` itself, or the same server and token
/// in the recipe's own Drone repository when the enrollment pins one (the runner host that
/// holds its warm data).
pub fn drone_for(drone: &DroneClient, recipe: &Recipe) -> Result<DroneClient, DroneError> {
    match &recipe.drone_repo {
        Some(repo) => drone.for_repo(repo),
        None => Ok(drone.clone()),
    }
}

/// Gets `recipe` built at `params` once: returns the build with the same parameters that is
/// already pending, running or green ([`DroneClient::find_build`]), else starts one on `branch`.
pub async fn start_build_once(
    drone: &DroneClient,
    recipe: &Recipe,
    branch: &str,
    params: &BuildParams,
) -> Result<BuildOnce, StartError> {
    let client = drone_for(drone, recipe).map_err(StartError::DroneRepo)?;
    match client.find_build(params).await.map_err(StartError::Drone)? {
        Some(build) => Ok(BuildOnce::Found(build)),
        None => client
            .start_build(branch, params)
            .await
            .map(BuildOnce::Started)
            .map_err(StartError::Drone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Enrollment;
    use canon_testkit::drone::{FakeDrone, TOKEN as DRONE_TOKEN};
    use canon_testkit::forge::{FakeForge, FakePr, ForgeState, Shape};
    use canon_testkit::git::{git, merged_pr_upstream};

    const FORGE_TOKEN: &str = "mirror-forge-token";

    /// Returns the one recipe of an enrollment with `upstream` and `mirror` (paths or URLs).
    fn recipe(upstream: &str, mirror: &str) -> Recipe {
        let text =
            format!("recipes:\n  - name: alpha\n    upstream: {upstream}\n    mirror: {mirror}\n");
        let mut e = Enrollment::parse(Path::new("enrollment.yml"), &text).unwrap();
        e.recipes.remove(0)
    }

    /// An upstream that merged the mirror's `pr-1` (not `pr-2`), a mirror holding both PR
    /// branches, and the recipe between them.
    struct Fx {
        tmp: tempfile::TempDir,
        recipe: Recipe,
        heads: [String; 2],
    }

    impl Fx {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let (up, mirror) = (tmp.path().join("up"), tmp.path().join("mirror.git"));
            let heads = merged_pr_upstream(&up, &mirror, "version: 1\n");
            git(&up, &["tag", "1.0.0+1.0"]);
            let recipe = recipe(
                up.to_str().unwrap(),
                &format!("file://{}", mirror.display()),
            );
            Self { tmp, recipe, heads }
        }

        fn state(&self) -> std::path::PathBuf {
            self.tmp.path().join("state")
        }

        fn request(&self) -> SyncRequest {
            sync_request(&self.recipe, &Credentials::default(), &self.state())
        }

        /// A Gitea stand-in holding the mirror's two PRs, behind `token`.
        fn forge(&self) -> FakeForge {
            let mut state = ForgeState::new("canon/alpha", FORGE_TOKEN);
            state.prs = vec![
                FakePr::open(1, &self.heads[0]),
                FakePr::open(2, &self.heads[1]),
            ];
            FakeForge::start(Shape::Gitea, state)
        }
    }

    #[test]
    fn a_recipe_mirror_syncs_its_branch_into_its_cache_under_the_state_dir() {
        let fx = Fx::new();
        let req = fx.request();
        assert_eq!(req.cache_dir, fx.state().join("alpha/upstream.git"));
        assert_eq!(req.branch, "main");
        assert_eq!(req.upstream.url, fx.recipe.upstream.url);
        assert_eq!(req.mirror.url, fx.recipe.mirror.url);
    }

    #[tokio::test]
    async fn a_sync_without_prs_to_tidy_reports_the_sync_alone() {
        let fx = Fx::new();
        let tidied = sync_and_tidy(fx.request(), None).await.unwrap();
        assert!(tidied.sync.changed());
        assert!(tidied.sync.upstream_tags.contains_key("1.0.0+1.0"));
        assert!(tidied.prs.is_none());
    }

    #[tokio::test]
    async fn tidying_closes_the_prs_upstream_merged_and_leaves_the_others_open() {
        let fx = Fx::new();
        let forge = fx.forge();
        let prs =
            MirrorPrs::on(&forge.base_url(), "canon/alpha", Secret::new(FORGE_TOKEN)).unwrap();
        assert_eq!(prs.repo(), "canon/alpha");
        let tidied = sync_and_tidy(fx.request(), Some(&prs)).await.unwrap();
        let closed = tidied.prs.expect("the PR step ran").expect("closing works");
        let numbers: Vec<u64> = closed.closed.iter().map(|c| c.number).collect();
        assert_eq!(numbers, vec![1]);
        assert_eq!(closed.left_open, vec![2]);
        // A second pass finds the mirror equal (a no-op sync) and nothing more to close.
        let again = sync_and_tidy(fx.request(), Some(&prs)).await.unwrap();
        assert!(again.sync.no_op);
        let closed = again.prs.unwrap().unwrap();
        assert!(closed.closed.is_empty(), "{closed:?}");
        assert_eq!(closed.left_open, vec![2]);
    }

    #[tokio::test]
    async fn a_forge_that_refuses_leaves_the_sync_standing() {
        let fx = Fx::new();
        let forge = fx.forge();
        let prs = MirrorPrs::on(&forge.base_url(), "canon/alpha", Secret::new("wrong")).unwrap();
        let tidied = sync_and_tidy(fx.request(), Some(&prs)).await.unwrap();
        assert!(tidied.sync.changed());
        assert!(matches!(tidied.prs, Some(Err(_))), "{:?}", tidied.prs);
    }

    #[tokio::test]
    async fn a_sync_that_fails_is_a_mirror_error_and_tidies_nothing() {
        let fx = Fx::new();
        let forge = fx.forge();
        let prs =
            MirrorPrs::on(&forge.base_url(), "canon/alpha", Secret::new(FORGE_TOKEN)).unwrap();
        let mut request = fx.request();
        request.upstream.url = fx.tmp.path().join("gone").display().to_string();
        let err = sync_and_tidy(request, Some(&prs)).await.unwrap_err();
        assert!(matches!(err, SyncError::Mirror(_)), "{err:?}");
        assert!(forge.requests().is_empty(), "no PR was listed");
    }

    fn params(commit: &str) -> BuildParams {
        BuildParams {
            recipe: crate::recipe::RecipeName::parse("alpha").unwrap(),
            tag: "1.0.0+1.0".into(),
            commit: crate::commit::CommitId::parse(&commit.repeat(40)).unwrap(),
        }
    }

    fn drone(server: &FakeDrone) -> DroneClient {
        DroneClient::new(&server.url(), Secret::new(DRONE_TOKEN), "canon/ci").unwrap()
    }

    #[tokio::test]
    async fn a_build_is_started_once_and_found_after() {
        let server = FakeDrone::start();
        let (client, recipe) = (drone(&server), recipe("/up", "/mirror"));
        let first = start_build_once(&client, &recipe, "main", &params("a"))
            .await
            .unwrap();
        let BuildOnce::Started(build) = &first else {
            panic!("{first:?}")
        };
        let again = start_build_once(&client, &recipe, "main", &params("a"))
            .await
            .unwrap();
        assert_eq!(again, BuildOnce::Found(build.clone()));
        assert_eq!(again.build().number, first.into_build().number);
        // Another commit for the same tag is another build.
        let other = start_build_once(&client, &recipe, "main", &params("b"))
            .await
            .unwrap();
        assert!(matches!(other, BuildOnce::Started(_)), "{other:?}");
        assert_eq!(server.creates().len(), 2);
        assert!(server.creates()[0].path.starts_with("/api/repos/canon/ci/"));
    }

    #[tokio::test]
    async fn a_recipe_pinned_to_its_own_drone_repository_builds_there() {
        let server = FakeDrone::start();
        let mut recipe = recipe("/up", "/mirror");
        recipe.drone_repo = Some("canon/warm-host".into());
        start_build_once(&drone(&server), &recipe, "main", &params("a"))
            .await
            .unwrap();
        let creates = server.creates();
        assert_eq!(creates.len(), 1);
        assert_eq!(creates[0].path, "/api/repos/canon/warm-host/builds");
    }

    #[tokio::test]
    async fn a_bad_pinned_repository_and_a_drone_failure_are_told_apart() {
        let server = FakeDrone::start();
        let mut pinned = recipe("/up", "/mirror");
        pinned.drone_repo = Some("not-owner-slash-name".into());
        let err = start_build_once(&drone(&server), &pinned, "main", &params("a"))
            .await
            .unwrap_err();
        assert!(matches!(err, StartError::DroneRepo(_)), "{err:?}");
        assert!(server.requests().is_empty(), "nothing was asked of Drone");

        server.answer_null(true);
        let err = start_build_once(
            &drone(&server),
            &recipe("/up", "/mirror"),
            "main",
            &params("a"),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, StartError::Drone(DroneError::NoPipeline { .. })),
            "{err:?}"
        );
        // The message is Drone's own, unwrapped.
        assert!(
            err.to_string().starts_with("Drone created no build"),
            "{err}"
        );
    }
}
