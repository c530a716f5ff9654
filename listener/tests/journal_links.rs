//! The journal in a shared state dir cannot be turned against the listener: a database, `-wal`,
//! `-shm` or `-journal` file planted there as a symbolic link (or a FIFO) is refused with an
//! error naming it, and what the link points to is never touched.

use std::os::unix::fs::symlink;
use std::path::Path;

use canon_listener::journal::{Journal, JournalError};

const PRECIOUS: &[u8] = b"root-only: do not touch\n";

/// Opens the journal at `path` and returns the error, panicking when it opens.
fn open_error(path: &Path) -> JournalError {
    match Journal::open(path) {
        Ok(_) => panic!("the journal at {} opened", path.display()),
        Err(e) => e,
    }
}

fn assert_refused(e: &JournalError, path: &Path, why: &str) {
    assert!(matches!(e, JournalError::Unsafe(_)), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains(why), "{text}");
}

#[test]
fn a_journal_file_that_is_a_link_is_refused_and_its_target_untouched() {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, PRECIOUS).unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let db = state.join("listener.sqlite3");
        let planted = state.join(format!("listener.sqlite3{suffix}"));
        symlink(&outside, &planted).unwrap();

        let e = open_error(&db);
        assert_refused(&e, &planted, "symbolic link");
        assert_eq!(std::fs::read(&outside).unwrap(), PRECIOUS, "{suffix}");
        assert!(std::fs::symlink_metadata(&planted)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

#[test]
fn a_journal_link_to_nothing_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("created-through-a-link");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let db = state.join("listener.sqlite3");
    symlink(&target, &db).unwrap();
    let e = open_error(&db);
    assert_refused(&e, &db, "symbolic link");
    assert!(!target.exists(), "a file was created through the link");
}

#[test]
fn a_fifo_in_place_of_the_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("listener.sqlite3");
    let c = std::ffi::CString::new(db.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    let e = open_error(&db);
    assert_refused(&e, &db, "not a regular file");
}

#[test]
fn a_journal_of_its_own_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("listener.sqlite3");
    let (journal, writer) = Journal::open(&db).expect("opens");
    drop(journal);
    writer.join().unwrap();
    // Opening it again finds its own files (database and WAL) and uses them.
    let (journal, writer) = Journal::open(&db).expect("opens again");
    drop(journal);
    writer.join().unwrap();
}
