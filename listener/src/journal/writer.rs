//! The [`Journal`] handle and its writer thread: group commit, one savepoint per write.
//!
//! Separate from what is written (intake, job updates) because this is the part that decides
//! durability: a write is answered only after the transaction holding it is committed, and a
//! failing write rolls back only its own savepoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::schema::{migrate, open_conn, SCHEMA};
use super::JournalError;

/// How many writes one transaction takes at most.
const MAX_BATCH: usize = 1024;
/// How many writes may wait for the writer before senders wait too.
const QUEUE: usize = 8192;

/// A queued write: runs inside a group's transaction, then learns whether the group committed.
trait Pending: Send {
    fn run(&mut self, conn: &Connection) -> bool;
    fn complete(self: Box<Self>, committed: Result<(), String>);
}

/// A write and where to send its result (nowhere for writes nobody waits for).
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

/// What the writer thread receives.
type Op = Box<dyn Pending>;

/// The journal handle: cheap to clone, shared by routes and workers.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Op>,
    reader: Arc<Mutex<Connection>>,
    healthy: Arc<AtomicBool>,
    path: PathBuf,
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
        let mut writer = open_conn(path)?;
        writer
            .execute_batch(SCHEMA)
            .and_then(|()| migrate(&mut writer))
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
        // Every read is a bounded page or an index seek, and a checkpoint copies frames without
        // caching them: 512 KiB of page cache each (SQLite's default is 2 MiB) keeps the
        // process small once the journal outgrows the caches, as after a burst of tags.
        for conn in [&checkpointer, &reader] {
            conn.execute_batch("PRAGMA cache_size=-512;")
                .map_err(|source| JournalError::Open {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
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
}

/// Takes every write queued while the previous commit ran, commits them as one group and
/// answers each; ends once every handle is dropped.
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

/// Runs `batch` in one transaction, each write in its own savepoint, and commits it.
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
