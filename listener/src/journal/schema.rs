//! The journal's tables and how each of its connections is opened.
//!
//! Kept apart from the code that writes and reads them so the stored shape can be read in one
//! place: one row per delivery, one row per (forge, repo, tag) job.

use std::path::Path;

use rusqlite::Connection;

use super::JournalError;

/// The tables and indexes, created when missing.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    forge TEXT NOT NULL,
    repo TEXT NOT NULL,
    recipe TEXT NOT NULL,
    tag TEXT NOT NULL,
    ref_sha TEXT,
    commit_hint TEXT,
    resolved_commit TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    build INTEGER,
    build_link TEXT,
    error TEXT,
    flags TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (forge, repo, tag)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_recipe_tag ON jobs (recipe, tag);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery TEXT NOT NULL,
    forge TEXT NOT NULL,
    event TEXT NOT NULL,
    repo TEXT,
    recipe TEXT,
    tag TEXT,
    ref_sha TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    job INTEGER REFERENCES jobs (id),
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_job ON deliveries (job);
CREATE INDEX IF NOT EXISTS deliveries_recipe ON deliveries (recipe, seq);
";

/// Opens a connection to the journal at `path`: WAL, `synchronous=FULL` (each commit fsyncs),
/// foreign keys on, and a busy timeout so the writer, the reader and the checkpointer can share
/// the file.
pub(super) fn open_conn(path: &Path) -> Result<Connection, JournalError> {
    let open = |source| JournalError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(open)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(open)?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        .map_err(open)?;
    Ok(conn)
}
