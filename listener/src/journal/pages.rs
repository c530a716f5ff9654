//! The API's and the status page's reads, a page at a time: newest first, at most
//! [`MAX_PAGE`] rows, continued from a cursor (the last id shown), so no request reads the whole
//! journal however many tags a burst brought.

use rusqlite::{params, Connection};

use super::queries::{forge_at, select_jobs};
use super::{DeliveryRow, Job, JobState, Journal, JournalError};

/// The most rows one page may hold.
pub const MAX_PAGE: u32 = 500;

/// One page of rows, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// The cursor of the next (older) page, when there are older rows.
    pub next: Option<i64>,
}

/// Which jobs a section of the status page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Not yet done, skipped or failed.
    Pending,
    /// Failed for good.
    Failed,
    /// Flagged (tag moved or deleted upstream).
    Flagged,
}

impl Section {
    fn condition(self) -> &'static str {
        match self {
            Section::Pending => "state IN ('queued','retrying','running')",
            Section::Failed => "state = 'failed'",
            Section::Flagged => "flags != ''",
        }
    }
}

/// Keeps the first `limit` of `rows` (read with one more than `limit`) and returns the page,
/// with the cursor of the last row kept when one was left over.
fn page<T>(mut rows: Vec<(i64, T)>, limit: u32) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|(id, _)| *id)
    } else {
        None
    };
    Page {
        rows: rows.into_iter().map(|(_, row)| row).collect(),
        next,
    }
}

/// Reads up to `limit` deliveries older than `before` (a `seq`), newest first, with their seq.
fn deliveries_before(
    c: &Connection,
    before: i64,
    limit: u32,
) -> Result<Vec<(i64, DeliveryRow)>, rusqlite::Error> {
    let mut st = c.prepare_cached(
        "SELECT seq, delivery, forge, event, repo, recipe, tag, outcome, reason, job, received_at,
           repeats
         FROM deliveries WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![before, limit], |r| {
        Ok((
            r.get(0)?,
            DeliveryRow {
                delivery: r.get(1)?,
                forge: forge_at(r, 2)?,
                event: r.get(3)?,
                repo: r.get(4)?,
                recipe: r.get(5)?,
                tag: r.get(6)?,
                outcome: r.get(7)?,
                reason: r.get(8)?,
                job: r.get(9)?,
                received_at: r.get(10)?,
                repeats: r.get(11)?,
            },
        ))
    })?;
    rows.collect()
}

impl Journal {
    /// Returns up to `limit` (at most [`MAX_PAGE`]) jobs with an id below `before` (all when
    /// `None`), newest first, each with its delivery ids.
    pub async fn jobs_page(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Page<Job>, JournalError> {
        let limit = limit.min(MAX_PAGE);
        let before = before.unwrap_or(i64::MAX);
        self.read(move |c| {
            let jobs = select_jobs(
                c,
                "WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
                params![before, limit + 1],
            )?;
            Ok(page(jobs.into_iter().map(|j| (j.id, j)).collect(), limit))
        })
        .await
    }

    /// Returns up to `limit` (at most [`MAX_PAGE`]) journaled deliveries older than the cursor
    /// `before` (all when `None`), newest first, each with its own cursor (so a page merged with
    /// rows from elsewhere can say where it stopped).
    pub async fn deliveries_page(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Page<(i64, DeliveryRow)>, JournalError> {
        let limit = limit.min(MAX_PAGE);
        let before = before.unwrap_or(i64::MAX);
        self.read(move |c| {
            let rows = deliveries_before(c, before, limit + 1)?;
            Ok(page(
                rows.into_iter().map(|(s, r)| (s, (s, r))).collect(),
                limit,
            ))
        })
        .await
    }

    /// Returns the newest `limit` deliveries, newest first.
    pub async fn deliveries(&self, limit: u32) -> Result<Vec<DeliveryRow>, JournalError> {
        self.read(move |c| {
            Ok(deliveries_before(c, i64::MAX, limit)?
                .into_iter()
                .map(|(_, row)| row)
                .collect())
        })
        .await
    }

    /// Returns the newest `limit` jobs of `section` and how many it has in all.
    pub async fn section(
        &self,
        section: Section,
        limit: u32,
    ) -> Result<(Vec<Job>, u64), JournalError> {
        self.read(move |c| {
            let cond = section.condition();
            let jobs = select_jobs(
                c,
                &format!("WHERE {cond} ORDER BY id DESC LIMIT ?1"),
                params![limit],
            )?;
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM jobs WHERE {cond}"),
                [],
                |r| r.get(0),
            )?;
            Ok((jobs, total.max(0) as u64))
        })
        .await
    }

    /// Returns the tags and states of the newest `limit` jobs of `recipe`, newest first: what
    /// the status page and the badge know of the recipe's recent tags. One seek in the index
    /// `jobs_recipe_id`, however many jobs the recipe has.
    pub async fn recipe_tags(
        &self,
        recipe: String,
        limit: u32,
    ) -> Result<Vec<(String, JobState)>, JournalError> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT tag, state FROM jobs INDEXED BY jobs_recipe_id
                 WHERE recipe = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![recipe, limit], |r| {
                // As in `job_from_row`: a state the journal never writes reads as failed.
                let state: String = r.get(1)?;
                Ok((r.get(0)?, state.parse().unwrap_or(JobState::Failed)))
            })?;
            rows.collect()
        })
        .await
    }

    /// Returns every job, newest first: for tests, which read small journals whole.
    #[cfg(test)]
    pub async fn jobs(&self) -> Result<Vec<Job>, JournalError> {
        self.read(|c| select_jobs(c, "ORDER BY id DESC", [])).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Intake, IntakeFact};
    use canon_shared::forge::ForgeKind;
    use canon_shared::recipe::RecipeName;

    /// Journals `n` new tags of one recipe, each by its own delivery.
    async fn tags(journal: &Journal, n: usize) {
        for i in 0..n {
            journal
                .intake(Intake {
                    forge: ForgeKind::Gitea,
                    delivery: format!("d-{i}"),
                    event: "push".into(),
                    fact: IntakeFact::NewTag {
                        repo: "o/app".into(),
                        recipe: RecipeName::parse("app").expect("valid name"),
                        tag: format!("1.0.{i}+1").parse().expect("a release tag"),
                        ref_sha: None,
                        commit_hint: None,
                    },
                    received_at: format!("2024-05-01T12:00:{:02}.000000Z", i % 60),
                })
                .await
                .expect("journaled");
        }
    }

    #[test]
    fn a_page_keeps_the_limit_and_points_past_its_last_row_only_when_more_are_left() {
        let rows = |n: i64| (0..n).rev().map(|i| (i, i)).collect::<Vec<_>>();
        // (what it shows, rows read, limit, rows kept, next cursor)
        type Case = (&'static str, i64, u32, Vec<i64>, Option<i64>);
        let cases: &[Case] = &[
            ("fewer than the limit", 2, 3, vec![1, 0], None),
            ("exactly the limit read", 3, 3, vec![2, 1, 0], None),
            ("one more than the limit", 4, 3, vec![3, 2, 1], Some(1)),
            ("nothing", 0, 3, vec![], None),
        ];
        for (says, n, limit, want, next) in cases {
            let p = page(rows(*n), *limit);
            assert_eq!((&p.rows, p.next), (want, *next), "{says}");
        }
    }

    #[tokio::test]
    async fn the_cursor_walks_every_job_and_delivery_exactly_once_newest_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (journal, _writer) = Journal::open(&dir.path().join("j.sqlite3")).expect("opens");
        tags(&journal, 23).await;
        for limit in [1, 5, 23, 100] {
            let (mut jobs, mut deliveries) = (Vec::new(), Vec::new());
            let mut before = None;
            loop {
                let p = journal.jobs_page(limit, before).await.expect("reads");
                assert!(p.rows.len() <= limit as usize);
                jobs.extend(p.rows.iter().map(|j| j.id));
                assert!(
                    p.rows.iter().all(|j| j.deliveries.len() == 1),
                    "jobs carry their deliveries"
                );
                match p.next {
                    Some(n) => before = Some(n),
                    None => break,
                }
            }
            before = None;
            loop {
                let p = journal.deliveries_page(limit, before).await.expect("reads");
                assert!(p.rows.len() <= limit as usize);
                deliveries.extend(p.rows.into_iter().map(|(_, d)| d.delivery));
                match p.next {
                    Some(n) => before = Some(n),
                    None => break,
                }
            }
            let want_jobs: Vec<i64> = (1..=23).rev().collect();
            assert_eq!(jobs, want_jobs, "limit {limit}");
            let want: Vec<String> = (0..23).rev().map(|i| format!("d-{i}")).collect();
            assert_eq!(deliveries, want, "limit {limit}");
        }
        let capped = journal.jobs_page(MAX_PAGE + 1, None).await.expect("reads");
        assert_eq!(capped.rows.len(), 23);
    }

    #[tokio::test]
    async fn a_recipe_s_tags_are_its_newest_jobs_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (journal, _writer) = Journal::open(&dir.path().join("j.sqlite3")).expect("opens");
        tags(&journal, 5).await;
        let found = journal.recipe_tags("app".into(), 3).await.expect("reads");
        assert_eq!(
            found,
            [
                ("1.0.4+1".to_string(), JobState::Queued),
                ("1.0.3+1".to_string(), JobState::Queued),
                ("1.0.2+1".to_string(), JobState::Queued),
            ]
        );
        let plan: String = journal
            .read(|c| {
                c.query_row(
                    "EXPLAIN QUERY PLAN SELECT tag, state FROM jobs INDEXED BY jobs_recipe_id
                     WHERE recipe = 'app' ORDER BY id DESC LIMIT 3",
                    [],
                    |r| r.get(3),
                )
            })
            .await
            .expect("plans");
        assert!(
            plan.contains("jobs_recipe_id") && !plan.contains("TEMP B-TREE"),
            "{plan}"
        );
        assert!(journal
            .recipe_tags("other".into(), 3)
            .await
            .expect("reads")
            .is_empty());
    }

    #[tokio::test]
    async fn a_section_shows_its_newest_jobs_and_counts_them_all() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (journal, _writer) = Journal::open(&dir.path().join("j.sqlite3")).expect("opens");
        tags(&journal, 7).await;
        let (jobs, total) = journal.section(Section::Pending, 3).await.expect("reads");
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [7, 6, 5]);
        assert_eq!(total, 7);
        let (jobs, total) = journal.section(Section::Failed, 3).await.expect("reads");
        assert_eq!((jobs.len(), total), (0, 0));
    }
}
