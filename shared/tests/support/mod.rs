//! What only canon-shared's tests need beyond the kit (`canon-testkit`): a real OpenSSH server
//! on loopback for git over SSH, and libgit2's home directory pointed at the test's own
//! `known_hosts`.

pub mod ssh;
