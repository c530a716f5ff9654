//! The journal's tables and how each of its connections is opened.
//!
//! Kept apart from the code that writes and reads them so the stored shape can be read in one
//! place: one row per (forge, delivery id), one row per (forge, repo, tag) job. [`migrate`] brings
//! a journal written by an older listener to this shape.

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
    unfinished INTEGER NOT NULL DEFAULT 0,
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
CREATE INDEX IF NOT EXISTS jobs_recipe_id ON jobs (recipe, id);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (recipe, id)
    WHERE state IN ('queued','retrying','running');
CREATE INDEX IF NOT EXISTS jobs_pending_due ON jobs (next_attempt_ms)
    WHERE state IN ('queued','retrying','running');
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
    received_at TEXT NOT NULL,
    repeats INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS deliveries_job ON deliveries (job);
CREATE INDEX IF NOT EXISTS deliveries_recipe ON deliveries (recipe, seq);
CREATE INDEX IF NOT EXISTS deliveries_received ON deliveries (received_at);
";

/// Columns added since the first journal: (table, column, definition).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("jobs", "unfinished", "INTEGER NOT NULL DEFAULT 0"),
    ("deliveries", "repeats", "INTEGER NOT NULL DEFAULT 0"),
];

/// The index that makes a delivery id one row per forge. Deliveries without an id (a forge that
/// sent none) cannot be told apart and are each stored.
const DELIVERY_ID_INDEX: &str = "CREATE UNIQUE INDEX IF NOT EXISTS deliveries_forge_delivery
    ON deliveries (forge, delivery) WHERE delivery != ''";

/// Brings a journal to the current shape, in one transaction: adds missing columns and, before
/// the delivery id becomes unique, folds the rows an older listener stored for replays of one
/// delivery into the first, counting them in `repeats`.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    for (table, column, definition) in ADDED_COLUMNS {
        let present: bool = tx.query_row(
            &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
            [column],
            |r| r.get(0),
        )?;
        if !present {
            tx.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    let unique: bool = tx.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'index' AND name = 'deliveries_forge_delivery'",
        [],
        |r| r.get(0),
    )?;
    if !unique {
        tx.execute_batch(
            "UPDATE deliveries SET repeats = repeats + (
                 SELECT COUNT(*) - 1 FROM deliveries d
                 WHERE d.forge = deliveries.forge AND d.delivery = deliveries.delivery)
             WHERE delivery != '' AND seq IN (
                 SELECT MIN(seq) FROM deliveries WHERE delivery != ''
                 GROUP BY forge, delivery HAVING COUNT(*) > 1);
             DELETE FROM deliveries WHERE delivery != '' AND seq NOT IN (
                 SELECT MIN(seq) FROM deliveries WHERE delivery != '' GROUP BY forge, delivery);",
        )?;
        tx.execute_batch(DELIVERY_ID_INDEX)?;
    }
    tx.commit()
}

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
