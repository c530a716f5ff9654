//! Retention: deliveries older than `CANON_RETENTION` are pruned, in bounded batches, at start
//! and then every hour.
//!
//! Separate from intake and the queries because it is the one place rows are deleted. A delivery
//! tied to an unfinished job is kept whatever its age: it is what the job was made from. Jobs are
//! never pruned: there is one per tag, and a finished one is what stops a replay from building the
//! tag again.

use std::time::Duration;

use rusqlite::params;
use tokio::sync::watch;

use super::{Journal, JournalError};
use crate::clock::text_ago;

/// How many deliveries one prune write deletes at most, so a large backlog never holds the
/// writer (and the webhooks waiting on it) for long.
pub const PRUNE_BATCH: u32 = 500;

/// How often the journal is pruned after the first time, at start.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Journal {
    /// Deletes up to `batch` deliveries received before `cutoff` (stored timestamp text), oldest
    /// first, except those tied to an unfinished job; returns how many it deleted.
    pub async fn prune_batch(&self, cutoff: String, batch: u32) -> Result<usize, JournalError> {
        self.write(move |c| {
            c.prepare_cached(
                "DELETE FROM deliveries WHERE seq IN (
                   SELECT seq FROM deliveries
                   WHERE received_at < ?1 AND (job IS NULL OR NOT EXISTS (
                     SELECT 1 FROM jobs WHERE jobs.id = deliveries.job
                       AND jobs.state IN ('queued','retrying','running')))
                   ORDER BY received_at LIMIT ?2)",
            )?
            .execute(params![cutoff, batch])
        })
        .await
    }

    /// Prunes every delivery older than `retention` that may go, one batch of at most `batch`
    /// per write; returns how many it deleted.
    pub async fn prune(&self, retention: Duration, batch: u32) -> Result<usize, JournalError> {
        let cutoff = text_ago(retention);
        let mut total = 0;
        loop {
            let n = self.prune_batch(cutoff.clone(), batch).await?;
            total += n;
            if n < batch as usize {
                return Ok(total);
            }
        }
    }
}

/// Prunes the journal at once and then every `every` until `shutdown` turns true.
pub async fn run(
    journal: Journal,
    retention: Duration,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match journal.prune(retention, PRUNE_BATCH).await {
            Ok(0) => {}
            Ok(pruned) => {
                tracing::info!(pruned, retention = %humantime::format_duration(retention), "Old deliveries pruned from the journal.")
            }
            Err(e) => tracing::error!(error = %e, "Cannot prune old deliveries from the journal."),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use canon_shared::forge::ForgeKind;
    use canon_shared::recipe::RecipeName;

    use super::*;
    use crate::journal::{Intake, IntakeFact, JobUpdate};

    /// A delivery stored `days` ago: for a job of tag `tag` when given, else ignored.
    fn delivery(id: &str, days: u64, tag: Option<&str>) -> Intake {
        let fact = match tag {
            Some(tag) => IntakeFact::NewTag {
                repo: "o/app".into(),
                recipe: RecipeName::parse("app").expect("valid name"),
                tag: tag.parse().expect("a release tag"),
                ref_sha: None,
                commit_hint: None,
            },
            None => IntakeFact::Ignored {
                repo: None,
                recipe: None,
                tag: None,
                reason: "not a tag event".into(),
            },
        };
        Intake {
            forge: ForgeKind::Gitea,
            delivery: id.into(),
            event: "push".into(),
            fact,
            received_at: text_ago(Duration::from_secs(days * 24 * 3600)),
        }
    }

    /// What a case's job ends as before pruning.
    #[derive(Clone, Copy)]
    enum JobEnd {
        Unfinished,
        Done,
        Failed,
    }

    #[tokio::test]
    async fn old_deliveries_go_unless_their_job_is_unfinished() {
        // (what it shows, age in days, job of the delivery, kept after a 30-day prune)
        let cases: &[(&str, u64, Option<JobEnd>, bool)] = &[
            ("an old delivery of nothing goes", 40, None, false),
            ("a recent delivery of nothing stays", 3, None, true),
            (
                "an old delivery of a queued job stays",
                40,
                Some(JobEnd::Unfinished),
                true,
            ),
            (
                "an old delivery of a done job goes",
                40,
                Some(JobEnd::Done),
                false,
            ),
            (
                "an old delivery of a failed job goes",
                40,
                Some(JobEnd::Failed),
                false,
            ),
            (
                "a recent delivery of a done job stays",
                3,
                Some(JobEnd::Done),
                true,
            ),
        ];
        for (n, (says, days, job, kept)) in cases.iter().enumerate() {
            let dir = tempfile::tempdir().expect("temp dir");
            let (journal, _writer) = Journal::open(&dir.path().join("j.sqlite3")).expect("opens");
            let tag = job.map(|_| format!("1.0.{n}+1"));
            let r = journal
                .intake(delivery(&format!("d-{n}"), *days, tag.as_deref()))
                .await
                .expect("journaled");
            let update = match job {
                Some(JobEnd::Done) => Some(JobUpdate::Done {
                    commit: canon_shared::commit::CommitId::parse(&"c".repeat(40))
                        .expect("a full id"),
                    build: 1,
                    link: None,
                    note: None,
                }),
                Some(JobEnd::Failed) => Some(JobUpdate::Failed {
                    commit: None,
                    error: "no pipeline".into(),
                }),
                _ => None,
            };
            if let (Some(update), Some(id)) = (update, r.job) {
                journal
                    .finish(id, update, "2024-05-01T12:00:00.000000Z".into())
                    .await
                    .expect("finished");
            }
            let pruned = journal
                .prune(Duration::from_secs(30 * 24 * 3600), PRUNE_BATCH)
                .await
                .expect("pruned");
            assert_eq!(pruned, usize::from(!kept), "{says}");
            let left = journal.delivery_count().await.expect("counted");
            assert_eq!(left, u64::from(*kept), "{says}");
            assert_eq!(
                journal.jobs().await.expect("read").len(),
                usize::from(job.is_some()),
                "{says}: jobs are never pruned"
            );
        }
    }

    #[tokio::test]
    async fn pruning_runs_in_batches_of_at_most_the_bound_until_none_is_left() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (journal, _writer) = Journal::open(&dir.path().join("j.sqlite3")).expect("opens");
        for n in 0..7 {
            journal
                .intake(delivery(&format!("d-{n}"), 40 + n, None))
                .await
                .expect("journaled");
        }
        journal
            .intake(delivery("recent", 1, None))
            .await
            .expect("journaled");
        let cutoff = text_ago(Duration::from_secs(30 * 24 * 3600));
        let first = journal.prune_batch(cutoff, 3).await.expect("pruned");
        assert_eq!(first, 3, "one batch deletes at most its bound");
        let oldest_left: Vec<String> = journal
            .deliveries(10)
            .await
            .expect("read")
            .into_iter()
            .map(|d| d.delivery)
            .collect();
        assert_eq!(
            oldest_left,
            ["recent", "d-3", "d-2", "d-1", "d-0"],
            "the oldest go first"
        );
        let rest = journal
            .prune(Duration::from_secs(30 * 24 * 3600), 3)
            .await
            .expect("pruned");
        assert_eq!(rest, 4);
        assert_eq!(journal.delivery_count().await.expect("counted"), 1);
    }
}
