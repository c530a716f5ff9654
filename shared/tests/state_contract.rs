//! The state store contract, run against both backends: the state dir, and a git state
//! repository served over smart HTTP (`git http-backend` behind basic auth) on loopback. The race
//! runs also against a state repository on a plain path and on a `file://` URL, where no server
//! keeps pushes apart.
//!
//! Every case runs once per backend with the same assertions. The race and the kill -9 run real
//! processes: this test binary started again as a child that does one decision.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use canon_shared::mirror::GitRemote;
use canon_shared::recipe::RecipeName;
use canon_shared::secret::Secret;
use canon_shared::state::{
    self, CanonicalRecord, Change, HistoryEntry, LockWait, StateError, StateStore,
};
use canon_shared::version::{Precedence, ReleaseVersion};
use canon_testkit::git::bare;
use canon_testkit::git::http::GitHttpServer;

const TOKEN: &str = "state-token";
/// Set in a child: what it is to do (`promote <version>`).
const CHILD: &str = "CANON_CONTRACT_CHILD";
/// Set in a child: the backend (`files` or a repository URL) and its own state dir.
const CHILD_STORE: &str = "CANON_CONTRACT_STORE";
const CHILD_DIR: &str = "CANON_CONTRACT_DIR";

/// One backend under test: its store and what keeps it alive.
struct Backend {
    name: &'static str,
    /// The shared state dir (files) or the repository URL (git).
    target: String,
    root: tempfile::TempDir,
    _server: Option<GitHttpServer>,
}

impl Backend {
    fn files() -> Self {
        let root = tempfile::tempdir().unwrap();
        Backend {
            name: "files",
            target: root.path().join("state").display().to_string(),
            root,
            _server: None,
        }
    }

    fn git() -> Self {
        let root = tempfile::tempdir().unwrap();
        let served = root.path().join("served");
        bare(&served.join("state.git"));
        let server = GitHttpServer::start(&served, None, TOKEN);
        Backend {
            name: "git",
            target: server.url("state.git"),
            root,
            _server: Some(server),
        }
    }

    /// A state repository on the local filesystem, named by its plain path or, with `file_url`,
    /// by a `file://` URL.
    fn local_repo(file_url: bool) -> Self {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("state.git");
        bare(&repo);
        let target = if file_url {
            format!("file://{}", repo.display())
        } else {
            repo.display().to_string()
        };
        Backend {
            name: if file_url { "file-url" } else { "plain-path" },
            target,
            root,
            _server: None,
        }
    }

    /// A store as one host sees it, with `host` as that host's own state dir name.
    fn store(&self, host: &str) -> Box<dyn StateStore> {
        open(&self.target, &self.root.path().join(host))
    }
}

fn open(target: &str, own_dir: &Path) -> Box<dyn StateStore> {
    if target.starts_with("http") {
        let remote = GitRemote::with_token(target, Some(Secret::new(TOKEN)));
        state::open_store(own_dir, Some(remote))
    } else if target.ends_with(".git") {
        state::open_store(own_dir, Some(GitRemote::local(target)))
    } else {
        state::open_store(Path::new(target), None)
    }
}

fn both() -> [Backend; 2] {
    [Backend::files(), Backend::git()]
}

fn app() -> RecipeName {
    RecipeName::parse("app").unwrap()
}

fn record(version: &str) -> CanonicalRecord {
    CanonicalRecord {
        recipe: app(),
        version: ReleaseVersion::parse(version).unwrap(),
        commit: "a".repeat(40).parse().unwrap(),
        promoted_at: state::now(),
        build: Some("1".into()),
        pinned: None,
        host: None,
    }
}

fn entry(decision: &str, version: &str, before: Option<&CanonicalRecord>) -> HistoryEntry {
    HistoryEntry {
        at: state::now(),
        recipe: app(),
        decision: decision.into(),
        version: Some(version.into()),
        tested_commit: Some("a".repeat(40).parse().unwrap()),
        reasons: vec![],
        trigger: Some("test".into()),
        build: None,
        canonical_before: before.map(|c| c.version.to_string()),
    }
}

/// The decision the race takes: promote `version` when it is newer than the canonical, else
/// refuse it, as the gate does.
fn promote_if_newer(store: &dyn StateStore, version: &str) -> Result<state::Committed, StateError> {
    let lock = store.lock(&app(), LockWait::Wait(Duration::from_secs(60)))?;
    let wanted = ReleaseVersion::parse(version).unwrap();
    store.commit(&lock, &mut |current| {
        let newer = current.is_none_or(|c| wanted.precedence(&c.version) == Precedence::Newer);
        Ok(if newer {
            Change {
                canonical: Some(record(version)),
                history: vec![entry("promote", version, current)],
            }
        } else {
            Change {
                canonical: None,
                history: vec![entry("refuse", version, current)],
            }
        })
    })
}

#[test]
fn a_new_store_is_empty_and_a_decision_reads_back_on_another_host() {
    for b in both() {
        let first = b.store("host-a");
        assert_eq!(first.read_canonical(&app()).unwrap(), None, "{}", b.name);
        assert!(first.read_history(&app()).unwrap().is_empty(), "{}", b.name);
        let committed = promote_if_newer(first.as_ref(), "1.0.0+1").unwrap();
        assert_eq!(committed.before, None, "{}", b.name);
        let other = b.store("host-b");
        let seen = other.read_canonical(&app()).unwrap().unwrap();
        assert_eq!(seen.version.to_string(), "1.0.0+1", "{}", b.name);
        let history = other.read_history(&app()).unwrap();
        assert_eq!(history.len(), 1, "{}", b.name);
        assert_eq!(history[0].decision, "promote", "{}", b.name);
        // The other host decides against what the first wrote.
        let again = promote_if_newer(other.as_ref(), "0.9.0+1").unwrap();
        assert_eq!(
            again.before.map(|c| c.version.to_string()).as_deref(),
            Some("1.0.0+1"),
            "{}",
            b.name
        );
        assert_eq!(again.change.canonical, None, "{}", b.name);
        assert_eq!(first.read_history(&app()).unwrap().len(), 2, "{}", b.name);
    }
}

#[test]
fn pin_and_unpin_are_recorded_and_checked() {
    for b in both() {
        let store = b.store("host-a");
        let err = state::pin(store.as_ref(), &app(), "why", "me", LockWait::Fail).unwrap_err();
        assert!(
            matches!(err, StateError::NoCanonical { .. }),
            "{}: {err}",
            b.name
        );
        promote_if_newer(store.as_ref(), "1.0.0+1").unwrap();
        let pinned = state::pin(
            store.as_ref(),
            &app(),
            "migration pending",
            "ops",
            LockWait::Fail,
        )
        .unwrap();
        assert_eq!(pinned.pinned.unwrap().reason, "migration pending");
        assert!(
            matches!(
                state::pin(store.as_ref(), &app(), "again", "ops", LockWait::Fail),
                Err(StateError::AlreadyPinned { .. })
            ),
            "{}",
            b.name
        );
        let seen = b.store("host-b").read_canonical(&app()).unwrap().unwrap();
        assert!(
            seen.pinned.is_some(),
            "{}: the pin is seen elsewhere",
            b.name
        );
        let unpinned = state::unpin(store.as_ref(), &app(), "done", "ops", LockWait::Fail).unwrap();
        assert_eq!(unpinned.pinned, None, "{}", b.name);
        assert!(
            matches!(
                state::unpin(store.as_ref(), &app(), "again", "ops", LockWait::Fail),
                Err(StateError::NotPinned { .. })
            ),
            "{}",
            b.name
        );
        let decisions: Vec<String> = store
            .read_history(&app())
            .unwrap()
            .into_iter()
            .map(|h| h.decision)
            .collect();
        assert_eq!(decisions, ["promote", "pin", "unpin"], "{}", b.name);
    }
}

#[test]
fn a_decision_that_fails_writes_nothing() {
    for b in both() {
        let store = b.store("host-a");
        promote_if_newer(store.as_ref(), "1.0.0+1").unwrap();
        let lock = store.lock(&app(), LockWait::Fail).unwrap();
        let err = store
            .commit(&lock, &mut |_| Err(StateError::NotPinned { recipe: app() }))
            .unwrap_err();
        assert!(matches!(err, StateError::NotPinned { .. }), "{}", b.name);
        drop(lock);
        assert_eq!(store.read_history(&app()).unwrap().len(), 1, "{}", b.name);
    }
}

/// Starts this test binary again as a child that promotes `version` against `target` from
/// `own_dir`, with `fault` as its test fault point.
fn child(target: &str, own_dir: &Path, version: &str, fault: Option<&str>) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", &child_test_name(), "--nocapture"])
        .env(CHILD, format!("promote {version}"))
        .env(CHILD_STORE, target)
        .env(CHILD_DIR, own_dir);
    match fault {
        Some(f) => cmd.env(canon_shared::fault::FAULT_ENV, f),
        None => cmd.env_remove(canon_shared::fault::FAULT_ENV),
    };
    cmd
}

/// The child's side when started by [`child`]: one decision, as ordered. Run on its own, it
/// orders itself one first promotion per backend and checks that it landed.
#[test]
fn child_process_entry() {
    let Ok(what) = std::env::var(CHILD) else {
        for b in both() {
            let own = b.root.path().join("self");
            let out = child(&b.target, &own, "2.0.0+1", None).output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let seen = b.store("reader").read_canonical(&app()).unwrap().unwrap();
            assert_eq!(seen.version.to_string(), "2.0.0+1", "{}", b.name);
        }
        return;
    };
    let version = what.strip_prefix("promote ").expect("a promote order");
    let target = std::env::var(CHILD_STORE).unwrap();
    let own = PathBuf::from(std::env::var(CHILD_DIR).unwrap());
    let store = open(&target, &own);
    promote_if_newer(store.as_ref(), version).expect("the decision is written");
}

#[test]
fn eight_processes_promoting_interleaved_versions_leave_the_highest_and_every_decision_once() {
    let versions = [
        "1.3.0+1", "1.0.0+1", "1.7.0+1", "1.1.0+1", "1.5.0+1", "1.2.0+1", "1.6.0+1", "1.4.0+1",
    ];
    for b in both() {
        let children: Vec<_> = versions
            .iter()
            .enumerate()
            .map(|(n, v)| {
                let own = b.root.path().join(format!("worker-{n}"));
                child(&b.target, &own, v, None).spawn().unwrap()
            })
            .collect();
        for mut c in children {
            let status = c.wait().unwrap();
            assert!(status.success(), "{}: a child failed: {status}", b.name);
        }
        let store = b.store("reader");
        let canonical = store.read_canonical(&app()).unwrap().unwrap();
        assert_eq!(canonical.version.to_string(), "1.7.0+1", "{}", b.name);
        let history = store.read_history(&app()).unwrap();
        let decided: Vec<&str> = history
            .iter()
            .map(|h| h.version.as_deref().unwrap())
            .collect();
        let once: BTreeSet<&str> = decided.iter().copied().collect();
        assert_eq!(
            (decided.len(), once),
            (versions.len(), versions.iter().copied().collect()),
            "{}: every decision exactly once: {decided:?}",
            b.name
        );
        let promoted: Vec<ReleaseVersion> = history
            .iter()
            .filter(|h| h.decision == "promote")
            .map(|h| ReleaseVersion::parse(h.version.as_deref().unwrap()).unwrap())
            .collect();
        assert!(
            promoted
                .windows(2)
                .all(|w| w[1].precedence(&w[0]) == Precedence::Newer),
            "{}: promotions only go forward: {promoted:?}",
            b.name
        );
        // Each refusal was taken against a canonical at least as new as the refused version.
        for h in history.iter().filter(|h| h.decision == "refuse") {
            let refused = ReleaseVersion::parse(h.version.as_deref().unwrap()).unwrap();
            let before = ReleaseVersion::parse(h.canonical_before.as_deref().unwrap()).unwrap();
            assert_ne!(
                refused.precedence(&before),
                Precedence::Newer,
                "{}: {h:?}",
                b.name
            );
        }
    }
}

/// Six processes, each with its own state dir, promote 1.0.0 ... 1.5.0 at once into one state
/// repository on a local path (plain and `file://`), round after round: a push that is not
/// compare-and-swap lets a decision land over a `main` it was not taken against, which loses
/// another decision or lowers the canonical. Every round must end at 1.5.0 with each decision
/// in the history once, each taken against the canonical it names.
#[test]
fn six_racers_on_a_local_state_repository_lose_no_decision() {
    const ROUNDS: usize = 5;
    let versions = [
        "1.0.0+1", "1.1.0+1", "1.2.0+1", "1.3.0+1", "1.4.0+1", "1.5.0+1",
    ];
    for file_url in [false, true] {
        for round in 0..ROUNDS {
            let b = Backend::local_repo(file_url);
            let children: Vec<_> = versions
                .iter()
                .enumerate()
                .map(|(n, v)| {
                    let own = b.root.path().join(format!("racer-{n}"));
                    child(&b.target, &own, v, None).spawn().unwrap()
                })
                .collect();
            for mut c in children {
                let status = c.wait().unwrap();
                assert!(status.success(), "{} round {round}: a racer failed", b.name);
            }
            let store = b.store("reader");
            let canonical = store.read_canonical(&app()).unwrap().unwrap();
            let history = store.read_history(&app()).unwrap();
            let decided: Vec<&str> = history
                .iter()
                .map(|h| h.version.as_deref().unwrap())
                .collect();
            assert_eq!(
                canonical.version.to_string(),
                "1.5.0+1",
                "{} round {round}: the highest version wins: {decided:?}",
                b.name
            );
            let once: BTreeSet<&str> = decided.iter().copied().collect();
            assert_eq!(
                (decided.len(), once),
                (versions.len(), versions.iter().copied().collect()),
                "{} round {round}: every decision exactly once: {decided:?}",
                b.name
            );
            // Each decision names the canonical it was taken against: the one the line before
            // left.
            let mut current: Option<String> = None;
            for h in &history {
                assert_eq!(
                    h.canonical_before, current,
                    "{} round {round}: {h:?} in {decided:?}",
                    b.name
                );
                if h.decision == "promote" {
                    current = h.version.clone();
                }
            }
        }
    }
}

#[test]
fn a_kill_9_during_a_push_leaves_the_repository_consistent() {
    let b = Backend::git();
    promote_if_newer(b.store("host-a").as_ref(), "1.0.0+1").unwrap();
    let own = b.root.path().join("killed");
    let out = child(&b.target, &own, "1.1.0+1", Some("push:transfer"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the child was to die during its push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("test fault point push:transfer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing of the killed decision is there, and what is there reads whole.
    let store = b.store("host-b");
    assert_eq!(
        store
            .read_canonical(&app())
            .unwrap()
            .unwrap()
            .version
            .to_string(),
        "1.0.0+1"
    );
    assert_eq!(store.read_history(&app()).unwrap().len(), 1);
    // The killed host's own clone is usable again, and its next decision lands.
    let again = child(&b.target, &own, "1.1.0+1", None).output().unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let history = store.read_history(&app()).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        store
            .read_canonical(&app())
            .unwrap()
            .unwrap()
            .version
            .to_string(),
        "1.1.0+1"
    );
}

/// The name the test harness knows [`child_process_entry`] by: its module path in this crate's
/// one test binary, without the crate.
fn child_test_name() -> String {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    format!("{module}::child_process_entry")
}
