//! The worker's reads: which jobs it may start now, and when the next one is due.
//!
//! Kept apart from the API's reads because these run on every pass of the worker loop, burst or
//! not, so their cost must not grow with the number of waiting jobs. [`Journal::runnable`] is one
//! statement that walks the pending recipes through the partial index `jobs_pending` (one seek
//! per recipe, not one row per job), takes each recipe's oldest due job, leaves out the recipes a
//! worker already holds and returns at most as many as there are free workers: 30,000 queued tags
//! of one recipe cost the same as one.

use rusqlite::{params, Connection};

use super::{Journal, JournalError};

/// A job a worker may start now: just what the worker loop needs to claim it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The job id, to claim.
    pub id: i64,
    /// Its recipe, which the worker holds while the attempt runs.
    pub recipe: String,
}

/// The oldest due job of each pending recipe not in the JSON array `?2`, oldest first, at most
/// `?3`. `INDEXED BY` because the planner otherwise reads `jobs_state`, every pending row.
const RUNNABLE: &str = "
WITH RECURSIVE pending(recipe) AS (
    SELECT MIN(recipe) FROM jobs INDEXED BY jobs_pending
    WHERE state IN ('queued','retrying','running')
  UNION ALL
    SELECT (SELECT MIN(recipe) FROM jobs INDEXED BY jobs_pending
            WHERE state IN ('queued','retrying','running') AND recipe > pending.recipe)
    FROM pending WHERE pending.recipe IS NOT NULL
), oldest(id, recipe) AS (
    SELECT (SELECT MIN(id) FROM jobs INDEXED BY jobs_pending
            WHERE recipe = pending.recipe AND state IN ('queued','retrying','running')
              AND next_attempt_ms <= ?1),
           recipe
    FROM pending
    WHERE recipe IS NOT NULL AND recipe NOT IN (SELECT value FROM json_each(?2))
)
SELECT id, recipe FROM oldest WHERE id IS NOT NULL ORDER BY id LIMIT ?3";

/// Returns the jobs a worker may start at `now_ms`: see [`RUNNABLE`].
pub(super) fn runnable_in(
    c: &Connection,
    now_ms: i64,
    limit: usize,
    busy: &[String],
) -> Result<Vec<Due>, rusqlite::Error> {
    // A list of strings always serialises.
    let busy = serde_json::to_string(busy).unwrap_or_else(|_| "[]".into());
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut st = c.prepare_cached(RUNNABLE)?;
    let rows = st.query_map(params![now_ms, busy, limit], |r| {
        Ok(Due {
            id: r.get(0)?,
            recipe: r.get(1)?,
        })
    })?;
    rows.collect()
}

impl Journal {
    /// Returns at most `limit` jobs a worker may start now, oldest first: each one the oldest
    /// due job of its recipe, none of a recipe in `busy` (held by a running attempt).
    pub async fn runnable(
        &self,
        now_ms: i64,
        limit: usize,
        busy: Vec<String>,
    ) -> Result<Vec<Due>, JournalError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.read(move |c| runnable_in(c, now_ms, limit, &busy))
            .await
    }

    /// Returns the earliest due time of a waiting job (unix ms), when any.
    pub async fn next_due_ms(&self) -> Result<Option<i64>, JournalError> {
        self.read(|c| {
            c.query_row(
                "SELECT MIN(next_attempt_ms) FROM jobs INDEXED BY jobs_pending_due
                 WHERE state IN ('queued','retrying','running')",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::schema::{migrate, SCHEMA};

    /// Returns an in-memory journal database with `rows` of (recipe, state, next_attempt_ms).
    fn db(rows: &[(&str, &str, i64)]) -> Connection {
        let mut c = Connection::open_in_memory().expect("opens");
        c.execute_batch(SCHEMA).expect("schema");
        migrate(&mut c).expect("migrates");
        let tx = c.transaction().expect("tx");
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO jobs (forge, repo, recipe, tag, state, next_attempt_ms,
                       created_at, updated_at)
                     VALUES ('gitea', 'o/' || ?1, ?1, 't' || ?4, ?2, ?3, 't', 't')",
                )
                .expect("prepares");
            for (n, (recipe, state, due)) in rows.iter().enumerate() {
                st.execute(params![recipe, state, due, n as i64])
                    .expect("inserts");
            }
        }
        tx.commit().expect("commits");
        c
    }

    fn ids(due: &[Due]) -> Vec<(i64, &str)> {
        due.iter().map(|d| (d.id, d.recipe.as_str())).collect()
    }

    #[test]
    fn each_recipe_offers_its_oldest_due_job_and_busy_recipes_none() {
        let c = db(&[
            ("a", "queued", 0),     // 1
            ("a", "queued", 0),     // 2
            ("b", "done", 0),       // 3
            ("b", "retrying", 500), // 4: not due before 500
            ("c", "running", 0),    // 5: lease over
            ("d", "queued", 0),     // 6
            ("b", "queued", 0),     // 7
        ]);
        // (what it shows, now, limit, busy recipes, the jobs offered)
        type Case = (
            &'static str,
            i64,
            usize,
            &'static [&'static str],
            &'static [(i64, &'static str)],
        );
        let cases: &[Case] = &[
            (
                "oldest first, one per recipe, terminal and future jobs left out",
                100,
                10,
                &[],
                &[(1, "a"), (5, "c"), (6, "d"), (7, "b")],
            ),
            (
                "a retry that is due again is the oldest of its recipe",
                500,
                10,
                &[],
                &[(1, "a"), (4, "b"), (5, "c"), (6, "d")],
            ),
            ("the limit is honoured", 100, 2, &[], &[(1, "a"), (5, "c")]),
            (
                "busy recipes are left out before the limit",
                100,
                2,
                &["a", "c"],
                &[(6, "d"), (7, "b")],
            ),
            (
                "nothing when every recipe is busy",
                100,
                5,
                &["a", "b", "c", "d"],
                &[],
            ),
        ];
        for (says, now, limit, busy, want) in cases {
            let busy: Vec<String> = busy.iter().map(|s| s.to_string()).collect();
            let got = runnable_in(&c, *now, *limit, &busy).expect("reads");
            assert_eq!(ids(&got), *want, "{says}");
        }
    }

    #[test]
    fn a_burst_of_one_recipe_is_read_through_the_index_one_row_at_a_time() {
        let mut rows = vec![("calm", "queued", 0)];
        rows.extend(std::iter::repeat_n(("burst", "queued", 0), 30_000));
        let c = db(&rows);
        let got = runnable_in(&c, 1, 2, &[]).expect("reads");
        assert_eq!(ids(&got), [(1, "calm"), (2, "burst")]);
        let got = runnable_in(&c, 1, 2, &["calm".to_string()]).expect("reads");
        assert_eq!(ids(&got), [(2, "burst")]);
        // No step of the one statement reads the table or an index from end to end: each is a
        // seek, so its cost follows the number of recipes, not of jobs.
        let mut st = c
            .prepare(&format!("EXPLAIN QUERY PLAN {RUNNABLE}"))
            .expect("prepares");
        let plan: Vec<String> = st
            .query_map(params![1, "[]", 2], |r| r.get::<_, String>(3))
            .expect("plans")
            .collect::<Result<_, _>>()
            .expect("reads");
        let jobs: Vec<&String> = plan.iter().filter(|l| l.contains("jobs")).collect();
        assert!(!jobs.is_empty(), "{plan:?}");
        for line in jobs {
            assert!(
                line.starts_with("SEARCH jobs USING INDEX jobs_pending"),
                "{line} in {plan:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_next_due_time_ignores_finished_jobs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (journal, _writer) = Journal::open(&dir.path().join("j.sqlite3")).expect("opens");
        assert_eq!(journal.next_due_ms().await.expect("reads"), None);
        journal
            .write(|c| {
                c.execute_batch(
                    "INSERT INTO jobs (forge, repo, recipe, tag, state, next_attempt_ms,
                       created_at, updated_at) VALUES
                     ('gitea','o/a','a','1','done',5,'t','t'),
                     ('gitea','o/a','a','2','retrying',700,'t','t'),
                     ('gitea','o/b','b','3','queued',900,'t','t')",
                )
            })
            .await
            .expect("writes");
        assert_eq!(journal.next_due_ms().await.expect("reads"), Some(700));
        assert!(journal
            .runnable(1_000, 0, Vec::new())
            .await
            .expect("reads")
            .is_empty());
    }
}
