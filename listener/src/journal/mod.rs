//! The journal: every accepted delivery and every tag job, in SQLite (WAL) in the state dir.
//!
//! A webhook is answered 202 only after its row is fsynced, because Gitea never redelivers. To
//! keep that cheap under bursts, one writer thread owns the write connection and commits in
//! groups: it takes every write queued while the previous fsync ran and commits them in one
//! transaction (each in its own savepoint, so one failing write does not fail its neighbours),
//! then answers them all. `synchronous=FULL` makes each commit fsync the WAL.
//!
//! Jobs are keyed on (forge, recipe, tag): replays (new delivery id, same bytes) and the
//! push/create/release triple of one tag land on one job. A tag whose ref value changes is a new
//! fact: the delivery is recorded as `moved` and the job flagged (the newest 20 flags are kept).
//! Terminal states (`done`, `skipped`, `failed`) are never claimed again, across restarts too.
//!
//! The journal stays bounded: a delivery id is stored once per forge (a replay of it is counted on
//! its row), deliveries older than the retention are pruned unless their job is unfinished, and a
//! job that has used every attempt without a result is failed rather than claimed again.
//!
//! # Layout
//! - [`schema`]: the tables and how every connection is opened (WAL, `synchronous=FULL`).
//! - [`writer`]: the [`Journal`] handle, the group-commit writer thread and the reader.
//! - [`intake`]: a verified delivery becomes a delivery row and, for a new tag, one job.
//! - [`due`]: the worker's reads, bounded by the number of recipes, not of jobs.
//! - [`queries`]: jobs and deliveries as stored, the worker's claim and finish, the API's reads.
//! - [`pages`]: the API's and the status page's reads, newest first, a bounded page at a time.
//! - [`retention`]: pruning old deliveries in bounded batches, at start and every hour.

mod due;
mod intake;
mod pages;
mod queries;
pub mod retention;
mod schema;
mod writer;

use std::path::PathBuf;

pub use canon_shared::listener_api::JobState;
pub use due::Due;
pub use intake::{Intake, IntakeFact, IntakeResult, Outcome, POLL_EVENT};
pub use pages::{Page, Section, MAX_PAGE};
pub use queries::{Claim, ClaimTerms, DeliveryRow, Job, JobUpdate};
pub use writer::Journal;

/// Why the journal failed. Never carries payload content.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Opening or preparing the database failed.
    #[error("journal {path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A file of the journal is a link, not a regular file, or another user's.
    #[error("journal: {0}")]
    Unsafe(#[from] canon_shared::state::StateError),
    /// A statement failed.
    #[error("journal: {0}")]
    Sql(#[from] rusqlite::Error),
    /// Committing a group failed; none of its writes is stored.
    #[error("journal: commit failed: {0}")]
    Commit(String),
    /// The writer has stopped.
    #[error("journal: the writer has stopped")]
    Closed,
}
