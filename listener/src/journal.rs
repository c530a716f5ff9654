//! The journal: every accepted delivery and every tag job, in SQLite (WAL) in the state dir.
//!
//! A webhook is answered 202 only after its row is fsynced, because Gitea never redelivers. To
//! keep that cheap under bursts, one writer thread owns the write connection and commits in
//! groups: it takes every write queued while the previous fsync ran and commits them in one
//! transaction (each in its own savepoint, so one failing write does not fail its neighbours),
//! then answers them all. `synchronous=FULL` makes each commit fsync the WAL.
//!
//! Jobs are keyed on (forge, repo, tag): replays (new delivery id, same bytes) and the
//! push/create/release triple of one tag land on one job. A tag whose ref value changes is a new
//! fact: the delivery is recorded as `moved` and the job flagged. Terminal states (`done`,
//! `skipped`, `failed`) are never claimed again, across restarts too.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use canon_shared::recipe::RecipeName;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::event::ForgeKind;

/// How many writes one transaction takes at most.
const MAX_BATCH: usize = 1024;
/// How many writes may wait for the writer before senders wait too.
const QUEUE: usize = 8192;

const SCHEMA: &str = "
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

/// What a journaled delivery was, as decided at intake.
#[derive(Debug, Clone)]
pub enum IntakeFact {
    /// A new tag of an enrolled recipe.
    NewTag {
        /// `owner/name` from the payload.
        repo: String,
        /// The enrolled recipe it maps to.
        recipe: RecipeName,
        /// The short tag name (a valid release tag).
        tag: String,
        /// The ref value sent, when any.
        ref_sha: Option<String>,
        /// A commit the payload names, when any.
        commit_hint: Option<String>,
    },
    /// A tag deletion (recorded, never acted on).
    Deleted {
        /// `owner/name` from the payload.
        repo: String,
        /// The recipe, when enrolled.
        recipe: Option<RecipeName>,
        /// The short tag name.
        tag: String,
    },
    /// Nothing to act on, with the reason.
    Ignored {
        /// `owner/name`, when the payload names one.
        repo: Option<String>,
        /// The recipe, when enrolled.
        recipe: Option<RecipeName>,
        /// The tag, when the payload names one.
        tag: Option<String>,
        /// Why.
        reason: String,
    },
}

/// One verified delivery to journal.
#[derive(Debug, Clone)]
pub struct Intake {
    /// Which forge sent it.
    pub forge: ForgeKind,
    /// The `X-*-Delivery` header (may be empty).
    pub delivery: String,
    /// The `X-*-Event` header.
    pub event: String,
    /// What it means.
    pub fact: IntakeFact,
    /// When it arrived (RFC 3339).
    pub received_at: String,
}

/// What became of a journaled delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It created a job.
    Accepted,
    /// Its job already existed (replay, or another event of the same tag).
    Duplicate,
    /// Its job existed with a different ref value: the tag moved. The job is flagged.
    Moved,
    /// A tag deletion, recorded.
    Deleted,
    /// Nothing to act on.
    Ignored,
}

impl Outcome {
    /// Returns the name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Moved => "moved",
            Outcome::Deleted => "deleted",
            Outcome::Ignored => "ignored",
        }
    }
}

/// The result of journaling a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeResult {
    /// What it was.
    pub outcome: Outcome,
    /// The job it led to.
    pub job: Option<i64>,
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its first attempt.
    Queued,
    /// Claimed by a worker (or interrupted by a crash, and run again at start).
    Running,
    /// Failed, waiting for its next attempt.
    Retrying,
    /// A build was started (or found already started).
    Done,
    /// Not built, by decision (older than the canonical, already canonical).
    Skipped,
    /// Failed for good: out of attempts, or a failure retrying cannot fix.
    Failed,
}

impl JobState {
    /// Returns the name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Done => "done",
            JobState::Skipped => "skipped",
            JobState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "retrying" => JobState::Retrying,
            "done" => JobState::Done,
            "skipped" => JobState::Skipped,
            _ => JobState::Failed,
        }
    }

    /// Returns true for states a job never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Done | JobState::Skipped | JobState::Failed)
    }
}

/// A tag job as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// `gitea`, `forgejo` or `github`.
    pub forge: String,
    /// `owner/name` upstream.
    pub repo: String,
    /// The enrolled recipe.
    pub recipe: String,
    /// The release tag.
    pub tag: String,
    /// The commit resolved at the forge (or, before that, the payload's hint).
    pub commit: Option<String>,
    /// The ref value the deliveries carried.
    pub ref_sha: Option<String>,
    /// Its state.
    pub state: JobState,
    /// Attempts so far.
    pub attempts: u32,
    /// The Drone build number, once started.
    pub build: Option<u64>,
    /// The Drone build link, when known.
    pub build_link: Option<String>,
    /// The last error, or the reason it was skipped.
    pub error: Option<String>,
    /// Flags raised on the job (tag moved, tag deleted upstream).
    pub flags: Vec<String>,
    /// Delivery ids that led to it, in arrival order.
    pub deliveries: Vec<String>,
    /// When the next attempt is due (unix ms; 0 means now).
    pub next_attempt_ms: i64,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// A journaled delivery, for `/api/deliveries`.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    /// The delivery id header.
    pub delivery: String,
    /// The forge kind.
    pub forge: String,
    /// The event header.
    pub event: String,
    /// `owner/name`, when named.
    pub repo: Option<String>,
    /// The recipe, when enrolled.
    pub recipe: Option<String>,
    /// The tag, when named.
    pub tag: Option<String>,
    /// `accepted`, `duplicate`, `moved`, `deleted`, `ignored` (or `rejected`, never stored).
    pub outcome: String,
    /// Why, for ignored, moved, rejected.
    pub reason: Option<String>,
    /// The job it led to.
    pub job: Option<i64>,
    /// When it arrived.
    pub received_at: String,
}

/// How a worker attempt ended, to be stored.
#[derive(Debug, Clone)]
pub enum JobUpdate {
    /// A build was started or found.
    Done {
        /// The resolved commit.
        commit: String,
        /// The build number.
        build: u64,
        /// The build link.
        link: Option<String>,
        /// A note (e.g. "adopted an existing build").
        note: Option<String>,
    },
    /// Not built, by decision.
    Skipped {
        /// The resolved commit, when known.
        commit: Option<String>,
        /// Why.
        reason: String,
    },
    /// Failed; retry at `next_attempt_ms`.
    Retry {
        /// The resolved commit, when known.
        commit: Option<String>,
        /// The error.
        error: String,
        /// When to try again (unix ms).
        next_attempt_ms: i64,
    },
    /// Failed for good.
    Failed {
        /// The resolved commit, when known.
        commit: Option<String>,
        /// The error.
        error: String,
    },
}

trait Pending: Send {
    fn run(&mut self, conn: &Connection) -> bool;
    fn complete(self: Box<Self>, committed: Result<(), String>);
}

struct Task<R, F> {
    f: Option<F>,
    result: Option<Result<R, rusqlite::Error>>,
    reply: Option<oneshot::Sender<Result<R, JournalError>>>,
}

impl<R: Send, F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send> Pending for Task<R, F> {
    fn run(&mut self, conn: &Connection) -> bool {
        let r = match self.f.take() {
            Some(f) => f(conn),
            None => Err(rusqlite::Error::InvalidQuery),
        };
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn complete(mut self: Box<Self>, committed: Result<(), String>) {
        let out = match (committed, self.result.take()) {
            (Ok(()), Some(r)) => r.map_err(JournalError::Sql),
            (Ok(()), None) => Err(JournalError::Closed),
            (Err(e), _) => Err(JournalError::Commit(e)),
        };
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(out);
        }
    }
}

type Op = Box<dyn Pending>;

/// The journal handle: cheap to clone, shared by routes and workers.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Op>,
    reader: Arc<Mutex<Connection>>,
    healthy: Arc<AtomicBool>,
    path: PathBuf,
}

fn open_conn(path: &Path) -> Result<Connection, JournalError> {
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

impl Journal {
    /// Opens (creating if needed) the journal at `path` and starts its writer thread.
    ///
    /// Returns the handle and the writer's join handle; the writer ends once every handle is
    /// dropped and every queued write is committed.
    pub fn open(path: &Path) -> Result<(Self, std::thread::JoinHandle<()>), JournalError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                JournalError::Commit(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let writer = open_conn(path)?;
        writer
            .execute_batch(SCHEMA)
            .map_err(|source| JournalError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        // Checkpoints run beside the writer (PASSIVE never blocks it), so a commit never waits
        // for one; the writer's own automatic checkpoint is off.
        writer
            .execute_batch("PRAGMA wal_autocheckpoint=0;")
            .map_err(|source| JournalError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let checkpointer = open_conn(path)?;
        let reader = open_conn(path)?;
        let (tx, rx) = mpsc::channel::<Op>(QUEUE);
        let healthy = Arc::new(AtomicBool::new(true));
        let h = healthy.clone();
        let stop = tx.downgrade();
        std::thread::Builder::new()
            .name("journal-checkpoint".into())
            .spawn(move || {
                while stop.upgrade().is_some() {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    let _ = checkpointer.execute_batch("PRAGMA wal_checkpoint(PASSIVE);");
                }
            })
            .map_err(|e| {
                JournalError::Commit(format!("cannot start the checkpoint thread: {e}"))
            })?;
        let handle = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer_loop(writer, rx, h))
            .map_err(|e| JournalError::Commit(format!("cannot start the writer thread: {e}")))?;
        Ok((
            Journal {
                tx,
                reader: Arc::new(Mutex::new(reader)),
                healthy,
                path: path.to_path_buf(),
            },
            handle,
        ))
    }

    /// Returns the database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns false once a commit has failed (until one succeeds again).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.tx.is_closed()
    }

    /// Runs `f` in the next group transaction and returns its result once it is durable.
    pub async fn write<R, F>(&self, f: F) -> Result<R, JournalError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let task: Op = Box::new(Task {
            f: Some(f),
            result: None,
            reply: Some(reply),
        });
        self.tx.send(task).await.map_err(|_| JournalError::Closed)?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// Queues `f` without waiting for it to be durable; returns false (and drops it) when the
    /// queue is full. For records whose loss only costs history (ignored deliveries).
    pub fn write_later<F>(&self, f: F) -> bool
    where
        F: FnOnce(&Connection) -> Result<(), rusqlite::Error> + Send + 'static,
    {
        let task: Op = Box::new(Task::<(), F> {
            f: Some(f),
            result: None,
            reply: None,
        });
        self.tx.try_send(task).is_ok()
    }

    /// Waits until everything queued before this call is durable.
    pub async fn flush(&self) -> Result<(), JournalError> {
        self.write(|_| Ok(())).await
    }

    /// Runs a read on the reader connection, off the async threads.
    pub async fn read<R, F>(&self, f: F) -> Result<R, JournalError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn).map_err(JournalError::Sql)
        })
        .await
        .map_err(|_| JournalError::Closed)?
    }

    /// Journals a verified delivery durably and returns what it became.
    pub async fn intake(&self, intake: Intake) -> Result<IntakeResult, JournalError> {
        self.write(move |c| intake_tx(c, &intake)).await
    }

    /// Journals an ignored delivery without waiting for durability.
    pub fn intake_later(&self, intake: Intake) -> bool {
        self.write_later(move |c| intake_tx(c, &intake).map(|_| ()))
    }

    /// Returns the jobs a worker may start now: not terminal, due, oldest first.
    pub async fn runnable(&self, now_ms: i64) -> Result<Vec<Job>, JournalError> {
        self.read(move |c| {
            select_jobs(
                c,
                "WHERE state IN ('queued','retrying','running') AND next_attempt_ms <= ?1 ORDER BY id",
                params![now_ms],
            )
        })
        .await
    }

    /// Returns the earliest due time of a waiting job (unix ms), when any.
    pub async fn next_due_ms(&self) -> Result<Option<i64>, JournalError> {
        self.read(|c| {
            c.query_row(
                "SELECT MIN(next_attempt_ms) FROM jobs WHERE state IN ('queued','retrying','running')",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
        })
        .await
    }

    /// Marks a job running and counts the attempt, durably; `None` if it is terminal or unknown.
    pub async fn claim(&self, id: i64, now: String) -> Result<Option<Job>, JournalError> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE jobs SET state='running', attempts=attempts+1, updated_at=?2
                 WHERE id=?1 AND state IN ('queued','retrying','running')",
                params![id, now],
            )?;
            if n == 0 {
                return Ok(None);
            }
            Ok(select_jobs(c, "WHERE id=?1", params![id])?
                .into_iter()
                .next())
        })
        .await
    }

    /// Stores how an attempt ended, durably.
    pub async fn finish(
        &self,
        id: i64,
        update: JobUpdate,
        now: String,
    ) -> Result<(), JournalError> {
        self.write(move |c| {
            let (state, commit, build, link, error, next) = match update {
                JobUpdate::Done {
                    commit,
                    build,
                    link,
                    note,
                } => (
                    JobState::Done,
                    Some(commit),
                    Some(build as i64),
                    link,
                    note,
                    0,
                ),
                JobUpdate::Skipped { commit, reason } => {
                    (JobState::Skipped, commit, None, None, Some(reason), 0)
                }
                JobUpdate::Retry {
                    commit,
                    error,
                    next_attempt_ms,
                } => (
                    JobState::Retrying,
                    commit,
                    None,
                    None,
                    Some(error),
                    next_attempt_ms,
                ),
                JobUpdate::Failed { commit, error } => {
                    (JobState::Failed, commit, None, None, Some(error), 0)
                }
            };
            c.execute(
                "UPDATE jobs SET state=?2, resolved_commit=COALESCE(?3, resolved_commit),
                   build=COALESCE(?4, build), build_link=COALESCE(?5, build_link), error=?6,
                   next_attempt_ms=?7, updated_at=?8
                 WHERE id=?1 AND state NOT IN ('done','skipped','failed')",
                params![id, state.as_str(), commit, build, link, error, next, now],
            )?;
            Ok(())
        })
        .await
    }

    /// Returns every job, newest first, with its delivery ids.
    pub async fn jobs(&self) -> Result<Vec<Job>, JournalError> {
        self.read(|c| select_jobs(c, "ORDER BY id DESC", [])).await
    }

    /// Returns one job.
    pub async fn job(&self, id: i64) -> Result<Option<Job>, JournalError> {
        self.read(move |c| {
            Ok(select_jobs(c, "WHERE id=?1", params![id])?
                .into_iter()
                .next())
        })
        .await
    }

    /// Returns the newest `limit` deliveries, newest first.
    pub async fn deliveries(&self, limit: u32) -> Result<Vec<DeliveryRow>, JournalError> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT delivery, forge, event, repo, recipe, tag, outcome, reason, job, received_at
                 FROM deliveries ORDER BY seq DESC LIMIT ?1",
            )?;
            let rows = st.query_map(params![limit], |r| {
                Ok(DeliveryRow {
                    delivery: r.get(0)?,
                    forge: r.get(1)?,
                    event: r.get(2)?,
                    repo: r.get(3)?,
                    recipe: r.get(4)?,
                    tag: r.get(5)?,
                    outcome: r.get(6)?,
                    reason: r.get(7)?,
                    job: r.get(8)?,
                    received_at: r.get(9)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Returns how many deliveries the journal holds.
    pub async fn delivery_count(&self) -> Result<u64, JournalError> {
        self.read(|c| {
            c.query_row("SELECT COUNT(*) FROM deliveries", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
        })
        .await
    }

    /// Returns the number of jobs per state.
    pub async fn job_counts(&self) -> Result<Vec<(String, u64)>, JournalError> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })
        .await
    }

    /// Returns, per recipe, the arrival time of its last delivery (RFC 3339).
    pub async fn last_event_per_recipe(&self) -> Result<Vec<(String, String)>, JournalError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT recipe, received_at FROM deliveries WHERE seq IN
                   (SELECT MAX(seq) FROM deliveries WHERE recipe IS NOT NULL GROUP BY recipe)",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Op>, healthy: Arc<AtomicBool>) {
    let mut batch: Vec<Op> = Vec::with_capacity(64);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let committed = run_batch(&mut conn, &mut batch);
        healthy.store(committed.is_ok(), Ordering::Relaxed);
        if let Err(e) = &committed {
            tracing::error!(error = %e, writes = batch.len(), "Journal commit failed; the writes were answered with an error.");
        }
        for op in batch.drain(..) {
            op.complete(committed.clone());
        }
    }
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
}

fn run_batch(conn: &mut Connection, batch: &mut [Op]) -> Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| e.to_string())?;
    for op in batch.iter_mut() {
        if let Err(e) = conn.execute_batch("SAVEPOINT op") {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.to_string());
        }
        let ok = op.run(conn);
        let end = if ok {
            "RELEASE op"
        } else {
            "ROLLBACK TO op; RELEASE op"
        };
        if let Err(e) = conn.execute_batch(end) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.to_string());
        }
    }
    conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    })
}

fn intake_tx(c: &Connection, i: &Intake) -> Result<IntakeResult, rusqlite::Error> {
    let forge = i.forge.as_str();
    let insert_delivery = |repo: Option<&str>,
                           recipe: Option<&str>,
                           tag: Option<&str>,
                           ref_sha: Option<&str>,
                           outcome: Outcome,
                           reason: Option<&str>,
                           job: Option<i64>|
     -> Result<(), rusqlite::Error> {
        c.prepare_cached(
            "INSERT INTO deliveries (delivery, forge, event, repo, recipe, tag, ref_sha, outcome, reason, job, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            i.delivery,
            forge,
            i.event,
            repo,
            recipe,
            tag,
            ref_sha,
            outcome.as_str(),
            reason,
            job,
            i.received_at
        ])?;
        Ok(())
    };
    match &i.fact {
        IntakeFact::NewTag {
            repo,
            recipe,
            tag,
            ref_sha,
            commit_hint,
        } => {
            let existing: Option<(i64, Option<String>)> = c
                .prepare_cached(
                    "SELECT id, ref_sha FROM jobs WHERE forge=?1 AND repo=?2 AND tag=?3",
                )?
                .query_row(params![forge, repo, tag], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (job, outcome, reason) = match existing {
                None => {
                    c.prepare_cached(
                        "INSERT INTO jobs (forge, repo, recipe, tag, ref_sha, commit_hint, state, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?7)",
                    )?
                    .execute(params![forge, repo, recipe.as_str(), tag, ref_sha, commit_hint, i.received_at])?;
                    (c.last_insert_rowid(), Outcome::Accepted, None)
                }
                Some((id, old)) => match (old.as_deref(), ref_sha.as_deref()) {
                    (Some(old), Some(new)) if old != new => {
                        let flag = format!(
                            "{}: tag moved: ref was {old}, now {new} (delivery {})",
                            i.received_at,
                            if i.delivery.is_empty() {
                                "-"
                            } else {
                                &i.delivery
                            }
                        );
                        c.prepare_cached(
                            "UPDATE jobs SET ref_sha=?2, commit_hint=COALESCE(?3, commit_hint),
                               flags=flags || ?4 || char(10), updated_at=?5 WHERE id=?1",
                        )?
                        .execute(params![
                            id,
                            new,
                            commit_hint,
                            flag,
                            i.received_at
                        ])?;
                        (
                            id,
                            Outcome::Moved,
                            Some(format!("tag moved from {old} to {new}")),
                        )
                    }
                    _ => {
                        c.prepare_cached(
                            "UPDATE jobs SET ref_sha=COALESCE(ref_sha, ?2), commit_hint=COALESCE(commit_hint, ?3)
                             WHERE id=?1 AND ((ref_sha IS NULL AND ?2 IS NOT NULL) OR (commit_hint IS NULL AND ?3 IS NOT NULL))",
                        )?
                        .execute(params![id, ref_sha, commit_hint])?;
                        (id, Outcome::Duplicate, None)
                    }
                },
            };
            insert_delivery(
                Some(repo),
                Some(recipe.as_str()),
                Some(tag),
                ref_sha.as_deref(),
                outcome,
                reason.as_deref(),
                Some(job),
            )?;
            Ok(IntakeResult {
                outcome,
                job: Some(job),
            })
        }
        IntakeFact::Deleted { repo, recipe, tag } => {
            let job: Option<i64> = c
                .prepare_cached("SELECT id FROM jobs WHERE forge=?1 AND repo=?2 AND tag=?3")?
                .query_row(params![forge, repo, tag], |r| r.get(0))
                .optional()?;
            if let Some(id) = job {
                let flag = format!("{}: tag deleted upstream", i.received_at);
                c.prepare_cached(
                    "UPDATE jobs SET flags=flags || ?2 || char(10), updated_at=?3 WHERE id=?1",
                )?
                .execute(params![id, flag, i.received_at])?;
            }
            insert_delivery(
                Some(repo),
                recipe.as_ref().map(|r| r.as_str()),
                Some(tag),
                None,
                Outcome::Deleted,
                Some("tag deleted upstream; nothing is triggered"),
                job,
            )?;
            Ok(IntakeResult {
                outcome: Outcome::Deleted,
                job,
            })
        }
        IntakeFact::Ignored {
            repo,
            recipe,
            tag,
            reason,
        } => {
            insert_delivery(
                repo.as_deref(),
                recipe.as_ref().map(|r| r.as_str()),
                tag.as_deref(),
                None,
                Outcome::Ignored,
                Some(reason),
                None,
            )?;
            Ok(IntakeResult {
                outcome: Outcome::Ignored,
                job: None,
            })
        }
    }
}

fn job_from_row(r: &Row<'_>) -> Result<Job, rusqlite::Error> {
    let flags: String = r.get("flags")?;
    let resolved: Option<String> = r.get("resolved_commit")?;
    let hint: Option<String> = r.get("commit_hint")?;
    Ok(Job {
        id: r.get("id")?,
        forge: r.get("forge")?,
        repo: r.get("repo")?,
        recipe: r.get("recipe")?,
        tag: r.get("tag")?,
        commit: resolved.or(hint),
        ref_sha: r.get("ref_sha")?,
        state: JobState::parse(&r.get::<_, String>("state")?),
        attempts: r.get("attempts")?,
        build: r.get::<_, Option<i64>>("build")?.map(|b| b as u64),
        build_link: r.get("build_link")?,
        error: r.get("error")?,
        flags: flags
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        deliveries: Vec::new(),
        next_attempt_ms: r.get("next_attempt_ms")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

fn select_jobs<P: rusqlite::Params>(
    c: &Connection,
    tail: &str,
    params: P,
) -> Result<Vec<Job>, rusqlite::Error> {
    let mut st = c.prepare_cached(&format!("SELECT * FROM jobs {tail}"))?;
    let mut jobs: Vec<Job> = st
        .query_map(params, job_from_row)?
        .collect::<Result<_, _>>()?;
    let mut ds = c.prepare_cached(
        "SELECT delivery FROM deliveries WHERE job=?1 AND delivery != '' ORDER BY seq",
    )?;
    for job in &mut jobs {
        job.deliveries = ds
            .query_map(params![job.id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
    }
    Ok(jobs)
}
