//! A state dir someone else can write to cannot be turned against canon: every file canon
//! creates, appends to, locks or reads there (`.lock`, `history.jsonl`, `canonical.json`, the
//! `warm/` holds, `missed-webhooks.jsonl`) is refused when it is a symbolic link, a FIFO, a hard
//! link or another user's file, with an error naming it, and what a link points to is never
//! touched.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use canon_shared::commit::CommitId;
use canon_shared::recipe::RecipeName;
use canon_shared::state::holds::{Holder, WarmHolds};
use canon_shared::state::{
    now, CanonicalRecord, HistoryEntry, LockWait, MissedWebhook, StateDir, StateError,
};
use canon_shared::version::ReleaseVersion;

/// What a planted link points to: a file outside the state dir that must stay as it is.
const PRECIOUS: &str = "root-only: do not touch\n";

fn app() -> RecipeName {
    RecipeName::parse("app").unwrap()
}

/// A state dir with `app`'s folder, and a file outside it for links to point to.
struct Planted {
    _dir: tempfile::TempDir,
    state: StateDir,
    outside: PathBuf,
}

impl Planted {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        std::fs::create_dir_all(root.join("app").join("warm").join("holders")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, PRECIOUS).unwrap();
        Self {
            state: StateDir::new(&root),
            outside,
            _dir: dir,
        }
    }

    /// Plants a link at `rel` (inside the state dir) to the outside file; returns its path.
    fn link(&self, rel: &str) -> PathBuf {
        let at = self.state.root().join(rel);
        symlink(&self.outside, &at).unwrap();
        at
    }

    /// Plants a link at `rel` to a file that does not exist yet; returns both paths.
    fn dangling(&self, rel: &str) -> (PathBuf, PathBuf) {
        let target = self.outside.with_file_name("created-through-a-link");
        let at = self.state.root().join(rel);
        symlink(&target, &at).unwrap();
        (at, target)
    }

    /// Asserts the outside file is as it was, and the link at `at` is still a link.
    fn untouched(&self, at: &Path) {
        assert_eq!(std::fs::read_to_string(&self.outside).unwrap(), PRECIOUS);
        assert!(
            std::fs::symlink_metadata(at)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{} is no longer the planted link",
            at.display()
        );
    }
}

/// Asserts `result` is the refusal of `path`, said so in its message.
fn refused<T: std::fmt::Debug>(result: Result<T, StateError>, path: &Path, why: &str) {
    match result {
        Err(e @ StateError::Unsafe { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains(why), "{text}");
        }
        other => panic!("expected {} to be refused, got {other:?}", path.display()),
    }
}

const LINK: &str = "symbolic link";

fn record() -> CanonicalRecord {
    CanonicalRecord {
        recipe: app(),
        version: ReleaseVersion::parse("1.0.0+1").unwrap(),
        commit: CommitId::parse(&"a".repeat(40)).unwrap(),
        promoted_at: now(),
        build: None,
        pinned: None,
        host: None,
    }
}

fn entry() -> HistoryEntry {
    HistoryEntry {
        at: now(),
        recipe: app(),
        decision: "promote".into(),
        version: Some("1.0.0+1".into()),
        tested_commit: None,
        reasons: Vec::new(),
        trigger: None,
        build: None,
        canonical_before: None,
    }
}

#[test]
fn a_lock_file_that_is_a_link_is_refused_and_its_target_untouched() {
    let p = Planted::new();
    let at = p.link("app/.lock");
    refused(p.state.lock(&app(), LockWait::Fail), &at, LINK);
    p.untouched(&at);

    // A link to where nothing is yet: nothing is created there either.
    let p = Planted::new();
    let (at, target) = p.dangling("app/.lock");
    refused(p.state.lock(&app(), LockWait::Fail), &at, LINK);
    assert!(!target.exists(), "a file was created through the link");
}

#[test]
fn a_history_that_is_a_link_is_neither_appended_to_nor_read() {
    let p = Planted::new();
    let at = p.link("app/history.jsonl");
    refused(p.state.append_history(&entry()), &at, LINK);
    refused(p.state.read_history(&app()), &at, LINK);
    refused(p.state.read_history_tail(&app(), 1024), &at, LINK);
    p.untouched(&at);

    let p = Planted::new();
    let (at, target) = p.dangling("app/history.jsonl");
    refused(p.state.append_history(&entry()), &at, LINK);
    assert!(!target.exists(), "a file was created through the link");
}

#[test]
fn a_canonical_record_that_is_a_link_is_neither_read_nor_replaced() {
    let p = Planted::new();
    let at = p.link("app/canonical.json");
    refused(p.state.read_canonical(&app()), &at, LINK);
    let lock = p.state.lock(&app(), LockWait::Fail).unwrap();
    refused(p.state.write_canonical(&lock, &record()), &at, LINK);
    p.untouched(&at);
    let leftovers: Vec<_> = std::fs::read_dir(p.state.recipe_dir(&app()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn a_recipe_folder_that_is_a_link_is_refused() {
    let p = Planted::new();
    std::fs::remove_dir_all(p.state.recipe_dir(&app())).unwrap();
    let elsewhere = p.outside.with_file_name("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let at = p.state.recipe_dir(&app());
    symlink(&elsewhere, &at).unwrap();
    refused(p.state.append_history(&entry()), &at, LINK);
    refused(p.state.lock(&app(), LockWait::Fail), &at, LINK);
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "something was written through the linked folder"
    );
}

#[test]
fn warm_data_locks_and_holder_records_that_are_links_are_refused() {
    let holder = Holder {
        build: "7".into(),
        what: "run".into(),
    };
    for name in [".lock", ".promote"] {
        let p = Planted::new();
        let at = p.link(&format!("app/warm/{name}"));
        let holds = WarmHolds::new(p.state.root(), &app());
        refused(holds.attach(&holder, LockWait::Fail), &at, LINK);
        if name == ".lock" {
            refused(holds.promote(&holder, LockWait::Fail), &at, LINK);
        }
        p.untouched(&at);
    }

    let p = Planted::new();
    let at = p.link("app/warm/holders/1-0000000000000000.json");
    let holds = WarmHolds::new(p.state.root(), &app());
    refused(holds.status(), &at, LINK);
    p.untouched(&at);

    let p = Planted::new();
    std::fs::remove_dir_all(p.state.root().join("app/warm")).unwrap();
    let elsewhere = p.outside.with_file_name("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let at = p.state.root().join("app/warm");
    symlink(&elsewhere, &at).unwrap();
    let holds = WarmHolds::new(p.state.root(), &app());
    refused(holds.attach(&holder, LockWait::Fail), &at, LINK);
}

#[test]
fn the_missed_webhook_record_that_is_a_link_is_refused() {
    let p = Planted::new();
    let at = p.link("missed-webhooks.jsonl");
    let missed = MissedWebhook {
        at: now(),
        recipe: app(),
        tag: "1.0.0+1".into(),
        commit: CommitId::parse(&"b".repeat(40)).unwrap(),
    };
    refused(p.state.record_missed_webhook(&missed), &at, LINK);
    p.untouched(&at);
    assert!(p.state.missed_webhook_counts().is_empty());
}

#[test]
fn a_fifo_in_place_of_the_history_is_refused_at_once() {
    let p = Planted::new();
    let at = p.state.history_path(&app());
    let c = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    let started = Instant::now();
    refused(p.state.append_history(&entry()), &at, "not a regular file");
    refused(p.state.read_history(&app()), &at, "not a regular file");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_history_hard_linked_to_another_file_is_not_appended_to() {
    let p = Planted::new();
    let at = p.state.history_path(&app());
    std::fs::hard_link(&p.outside, &at).unwrap();
    refused(p.state.append_history(&entry()), &at, "hard links");
    assert_eq!(std::fs::read_to_string(&p.outside).unwrap(), PRECIOUS);
}

#[test]
fn a_lock_file_owned_by_another_user_is_refused() {
    // SAFETY: geteuid only reads this process's effective user id.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test gives a file to another user, so it needs root"
    );
    let p = Planted::new();
    let at = p.state.recipe_dir(&app()).join(".lock");
    std::fs::write(&at, "").unwrap();
    std::os::unix::fs::chown(&at, Some(4343), None).unwrap();
    refused(p.state.lock(&app(), LockWait::Fail), &at, "uid 4343");
    // The state dir's owner is trusted like canon's own user: the listener and the plugin may
    // run as different users on one state dir.
    std::os::unix::fs::chown(p.state.root(), Some(4343), None).unwrap();
    p.state
        .lock(&app(), LockWait::Fail)
        .expect("a file of the state dir's owner is used");
}
