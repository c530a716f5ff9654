//! The journal's tables and how each of its connections is opened.
//!
//! Kept apart from the code that writes and reads them so the stored shape can be read in one
//! place: one row per (forge, delivery id), one row per (forge, recipe, tag) job. [`migrate`]
//! brings a journal written by an older listener to this shape.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::JournalError;

/// The jobs table's columns and key, for [`SCHEMA`] and for the rebuild in [`rekey_jobs`].
macro_rules! jobs_table {
    () => {
        "(
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
            UNIQUE (forge, recipe, tag)
        )"
    };
}

/// The tables and indexes, created when missing.
pub(super) const SCHEMA: &str = concat!(
    "CREATE TABLE IF NOT EXISTS jobs ",
    jobs_table!(),
    ";
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
"
);

/// Columns added since the first journal: (table, column, definition).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("jobs", "unfinished", "INTEGER NOT NULL DEFAULT 0"),
    ("deliveries", "repeats", "INTEGER NOT NULL DEFAULT 0"),
];

/// The jobs table's key before jobs were keyed on the recipe: the repository name a payload
/// gave, as shown (cut to 64 characters), so two long names could share one job.
const OLD_JOB_KEY: &str = "UNIQUE (forge, repo, tag)";

/// The index that makes a delivery id one row per forge. Deliveries without an id (a forge that
/// sent none) cannot be told apart and are each stored.
const DELIVERY_ID_INDEX: &str = "CREATE UNIQUE INDEX IF NOT EXISTS deliveries_forge_delivery
    ON deliveries (forge, delivery) WHERE delivery != ''";

/// Brings a journal to the current shape, in one transaction: adds missing columns, rekeys jobs
/// on (forge, recipe, tag), and, before the delivery id becomes unique, folds the rows an older
/// listener stored for replays of one delivery into the first, counting them in `repeats`.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    // Rebuilding the jobs table drops the table deliveries refer to; the references are checked
    // before the commit instead.
    conn.execute_batch("PRAGMA foreign_keys=OFF")?;
    let migrated = migrate_in_tx(conn);
    conn.execute_batch("PRAGMA foreign_keys=ON")?;
    migrated
}

/// The journal format this listener writes, kept in SQLite's `user_version`: 0 is canon 0.1's
/// (never set), 1 is canon 0.2's (the same tables, now numbered). A journal of a newer format is
/// refused, never migrated down; `CHANGELOG.md` says what each format changed.
pub const FORMAT: i64 = 1;

fn migrate_in_tx(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > FORMAT {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "the journal is in format {found}, written by a newer canon-listener; this one \
                 reads formats 0 to {FORMAT}: upgrade canon-listener (see CHANGELOG.md)"
            )),
        ));
    }
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
    let jobs_sql: String = tx.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'",
        [],
        |r| r.get(0),
    )?;
    if jobs_sql.contains(OLD_JOB_KEY) {
        rekey_jobs(&tx)?;
    }
    let broken: i64 = tx.query_row(
        "SELECT COUNT(*) FROM pragma_foreign_key_check('deliveries')",
        [],
        |r| r.get(0),
    )?;
    if broken > 0 {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
            Some(format!(
                "{broken} deliveries would refer to jobs that do not exist"
            )),
        ));
    }
    tx.execute_batch(&format!("PRAGMA user_version = {FORMAT}"))?;
    tx.commit()
}

/// Rebuilds the jobs table with the key (forge, recipe, tag). Jobs an older listener kept apart
/// only because their repository names differed become the oldest of them: its state stands,
/// the others' flags are added to it, and their deliveries point at it.
fn rekey_jobs(tx: &rusqlite::Transaction<'_>) -> Result<(), rusqlite::Error> {
    tx.execute_batch(concat!("CREATE TABLE jobs_new ", jobs_table!()))?;
    tx.execute_batch(
        "CREATE TEMP TABLE job_keep AS
             SELECT j.id AS id, (SELECT MIN(k.id) FROM jobs k
                 WHERE k.forge = j.forge AND k.recipe = j.recipe AND k.tag = j.tag) AS keep
             FROM jobs j;
         UPDATE jobs SET flags = (CASE WHEN flags = '' THEN '' ELSE flags || char(10) END) || (
                 SELECT group_concat(o.flags, char(10)) FROM jobs o JOIN temp.job_keep m
                     ON m.id = o.id AND m.keep = jobs.id AND o.id != jobs.id AND o.flags != '')
             WHERE EXISTS (SELECT 1 FROM temp.job_keep m JOIN jobs o ON o.id = m.id
                 WHERE m.keep = jobs.id AND o.id != jobs.id AND o.flags != '');
         UPDATE deliveries SET job = (SELECT keep FROM temp.job_keep WHERE id = deliveries.job)
             WHERE job IS NOT NULL;
         INSERT INTO jobs_new (id, forge, repo, recipe, tag, ref_sha, commit_hint, resolved_commit, state, attempts, unfinished, next_attempt_ms, build, build_link, error, flags, created_at, updated_at)
             SELECT id, forge, repo, recipe, tag, ref_sha, commit_hint, resolved_commit, state, attempts, unfinished, next_attempt_ms, build, build_link, error, flags, created_at, updated_at
             FROM jobs WHERE id IN (SELECT keep FROM temp.job_keep);
         DROP TABLE jobs;
         ALTER TABLE jobs_new RENAME TO jobs;
         DROP TABLE temp.job_keep;",
    )?;
    tx.execute_batch(SCHEMA)
}

/// Opens a connection to the journal at `path`: WAL, `synchronous=FULL` (each commit fsyncs),
/// foreign keys on, and a busy timeout so the writer, the reader and the checkpointer can share
/// the file.
pub(super) fn open_conn(path: &Path) -> Result<Connection, JournalError> {
    let open = |source| JournalError::Open {
        path: path.to_path_buf(),
        source,
    };
    refuse_unsafe_files(path)?;
    let conn =
        Connection::open_with_flags(path, OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW)
            .map_err(open)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(open)?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        .map_err(open)?;
    Ok(conn)
}

/// Refuses a journal whose database or side files (`-wal`, `-shm`, `-journal`) are links, not
/// regular files, or another user's: SQLite would open and write them wherever they point.
fn refuse_unsafe_files(path: &Path) -> Result<(), JournalError> {
    use canon_shared::state::files;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let owners = files::Owners::of(folder);
    files::check_file(path, owners)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        files::check_file(Path::new(&side), owners)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_version(c: &Connection) -> i64 {
        c.query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("user_version")
    }

    #[test]
    fn a_journal_of_the_previous_release_is_migrated_and_numbered() {
        let mut c = Connection::open_in_memory().expect("opens");
        c.execute_batch(SCHEMA).expect("schema");
        assert_eq!(user_version(&c), 0, "canon 0.1 never set it");
        migrate(&mut c).expect("migrates");
        assert_eq!(user_version(&c), FORMAT);
        migrate(&mut c).expect("migrating again changes nothing");
        assert_eq!(user_version(&c), FORMAT);
    }

    #[test]
    fn a_journal_of_a_newer_format_is_refused_and_left_as_it_is() {
        let mut c = Connection::open_in_memory().expect("opens");
        c.execute_batch(SCHEMA).expect("schema");
        c.execute_batch(&format!("PRAGMA user_version = {}", FORMAT + 1))
            .expect("set");
        let e = migrate(&mut c).expect_err("a newer journal").to_string();
        assert!(e.contains("written by a newer canon-listener"), "{e}");
        assert_eq!(user_version(&c), FORMAT + 1);
    }
}
