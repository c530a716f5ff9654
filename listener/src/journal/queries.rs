//! Jobs and deliveries as stored, and the reads and updates the worker and the API make.
//!
//! The worker claims a due job and records how its attempt ended; the routes list jobs and
//! deliveries and count them for metrics. Terminal jobs are never claimed or updated again.
//!
//! A claim leases the job: its due time moves past the lease, so a job whose attempt never
//! recorded a result (the process died during it) is claimed again only once the lease is over,
//! not at once on every restart. A job that has used every attempt is not claimed: it ends
//! `failed`, saying how many of its attempts did not finish, so one job that kills the process
//! cannot keep it in a crash loop.

use std::time::Duration;

use canon_shared::commit::CommitId;
use canon_shared::forge::ForgeKind;
use canon_shared::listener_api::{JobState, JobSummary};
use canon_shared::recipe::RecipeName;
use canon_shared::version::ReleaseVersion;
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::{Journal, JournalError};

/// A tag job as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// The forge that sent its deliveries (`gitea`, `forgejo` or `github` as stored).
    pub forge: ForgeKind,
    /// `owner/name` upstream.
    pub repo: String,
    /// The enrolled recipe.
    pub recipe: RecipeName,
    /// The release tag.
    pub tag: ReleaseVersion,
    /// The commit resolved at the forge (or, before that, the payload's hint).
    pub commit: Option<CommitId>,
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

impl Job {
    /// Returns what the API shows of the job to other crates: no error text, no URLs.
    pub fn summary(&self) -> JobSummary {
        JobSummary {
            id: self.id,
            recipe: self.recipe.clone(),
            tag: self.tag.to_string(),
            forge: self.forge,
            repo: self.repo.clone(),
            state: self.state,
            commit: self.commit.clone(),
            build: self.build,
            attempts: self.attempts,
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
        }
    }
}

/// A journaled delivery, for `/api/deliveries`.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    /// The delivery id header.
    pub delivery: String,
    /// The forge that sent it.
    pub forge: ForgeKind,
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
    /// When it first arrived.
    pub received_at: String,
    /// How many times the same delivery (forge and delivery id) arrived again since.
    pub repeats: u32,
}

/// The terms of a claim: when it is made, the attempt limit, and how long each attempt's lease
/// is.
pub struct ClaimTerms<L> {
    /// Now, as stored text.
    pub now: String,
    /// Now, in unix ms.
    pub now_ms: i64,
    /// Attempts a job may have; a job that has had them all is not claimed but failed.
    pub max_attempts: u32,
    /// Returns the lease for the attempt with the given number (1 for the first): how long the
    /// job is not due again unless the attempt records a result.
    pub lease: L,
}

/// What a claim found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The job is now `running`, its attempt counted and leased.
    Started(Job),
    /// The job had used every attempt without a result and is now `failed`.
    GaveUp(Job),
    /// The job's stored recipe or tag does not parse, so no attempt can run: it is now ended
    /// as an attempt at it would have ended it (failed for a recipe that is not a valid name,
    /// skipped for a tag that is not a release tag), its attempt counted.
    Unreadable {
        /// The stored recipe, as text.
        recipe: String,
        /// The stored tag, as text.
        tag: String,
        /// `Failed` or `Skipped`.
        state: JobState,
        /// Why, as stored in the job's error.
        reason: String,
    },
    /// The job is terminal or unknown; nothing was changed.
    NotRunnable,
}

/// Returns how a job whose stored `recipe` and `tag` are as given ends without an attempt, when
/// they do not parse: the state and the reason.
fn unreadable(recipe: &str, tag: &str) -> Option<(JobState, String)> {
    if let Err(e) = RecipeName::parse(recipe) {
        return Some((JobState::Failed, e.to_string()));
    }
    match ReleaseVersion::parse(tag) {
        Ok(_) => None,
        Err(e) => Some((
            JobState::Skipped,
            format!("{tag} is not a release tag: {e}"),
        )),
    }
}

/// How a worker attempt ended, to be stored.
#[derive(Debug, Clone)]
pub enum JobUpdate {
    /// A build was started or found.
    Done {
        /// The resolved commit.
        commit: CommitId,
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
        commit: Option<CommitId>,
        /// Why.
        reason: String,
    },
    /// Failed; retry at `next_attempt_ms`.
    Retry {
        /// The resolved commit, when known.
        commit: Option<CommitId>,
        /// The error.
        error: String,
        /// When to try again (unix ms).
        next_attempt_ms: i64,
    },
    /// Failed for good.
    Failed {
        /// The resolved commit, when known.
        commit: Option<CommitId>,
        /// The error.
        error: String,
    },
}

impl Journal {
    /// Claims job `id` for one attempt, durably: marks it running, counts the attempt and leases
    /// it; or, when it has already had `max_attempts`, fails it with the reason instead.
    pub async fn claim<L>(&self, id: i64, terms: ClaimTerms<L>) -> Result<Claim, JournalError>
    where
        L: Fn(u32) -> Duration + Send + 'static,
    {
        self.write(move |c| {
            let found: Option<(u32, u32, String, String)> = c
                .query_row(
                    "SELECT attempts, unfinished, recipe, tag FROM jobs
                     WHERE id=?1 AND state IN ('queued','retrying','running')",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((attempts, unfinished, recipe, tag)) = found else {
                return Ok(Claim::NotRunnable);
            };
            if let Some((state, reason)) = unreadable(&recipe, &tag) {
                c.execute(
                    "UPDATE jobs SET state=?2, attempts=attempts+1, unfinished=0, error=?3,
                       next_attempt_ms=0, updated_at=?4
                     WHERE id=?1",
                    params![id, state.as_str(), reason, terms.now],
                )?;
                return Ok(Claim::Unreadable {
                    recipe,
                    tag,
                    state,
                    reason,
                });
            }
            if attempts >= terms.max_attempts {
                c.execute(
                    "UPDATE jobs SET state='failed', error=?2, next_attempt_ms=0, updated_at=?3
                     WHERE id=?1",
                    params![id, gave_up(attempts, unfinished), terms.now],
                )?;
                return Ok(select_job(c, id)?.map_or(Claim::NotRunnable, Claim::GaveUp));
            }
            let lease = i64::try_from((terms.lease)(attempts + 1).as_millis()).unwrap_or(i64::MAX);
            c.execute(
                "UPDATE jobs SET state='running', attempts=attempts+1, unfinished=unfinished+1,
                   next_attempt_ms=?2, updated_at=?3
                 WHERE id=?1",
                params![id, terms.now_ms.saturating_add(lease), terms.now],
            )?;
            Ok(select_job(c, id)?.map_or(Claim::NotRunnable, Claim::Started))
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
                   next_attempt_ms=?7, unfinished=0, updated_at=?8
                 WHERE id=?1 AND state NOT IN ('done','skipped','failed')",
                params![
                    id,
                    state.as_str(),
                    commit.as_ref().map(CommitId::as_str),
                    build,
                    link,
                    error,
                    next,
                    now
                ],
            )?;
            Ok(())
        })
        .await
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

    /// Returns the newest job for `recipe` at `tag`, from any forge and repository, in any
    /// state: whether a webhook announced the tag.
    pub async fn job_for(
        &self,
        recipe: &RecipeName,
        tag: &str,
    ) -> Result<Option<Job>, JournalError> {
        let (recipe, tag) = (recipe.as_str().to_string(), tag.to_string());
        self.read(move |c| {
            Ok(select_jobs(
                c,
                "WHERE recipe=?1 AND tag=?2 ORDER BY id DESC LIMIT 1",
                params![recipe, tag],
            )?
            .into_iter()
            .next())
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

/// Returns why a job that had `attempts` attempts, the last `unfinished` of them without a
/// result, is not tried again.
fn gave_up(attempts: u32, unfinished: u32) -> String {
    if unfinished >= attempts {
        format!(
            "did not finish {attempts} times: each attempt ended without a result (the process \
             stopped during it); not tried again"
        )
    } else if unfinished > 0 {
        format!(
            "gave up after {attempts} attempts: the last {unfinished} did not finish (the process \
             stopped during them); not tried again"
        )
    } else {
        format!("gave up after {attempts} attempts, the limit; not tried again")
    }
}

/// Returns job `id`, when it exists.
fn select_job(c: &Connection, id: i64) -> Result<Option<Job>, rusqlite::Error> {
    Ok(select_jobs(c, "WHERE id=?1", params![id])?
        .into_iter()
        .next())
}

/// Reads the forge kind stored in column `idx` (a name [`ForgeKind::as_str`] returned).
pub(super) fn forge_at(r: &Row<'_>, idx: usize) -> Result<ForgeKind, rusqlite::Error> {
    r.get::<_, String>(idx)?
        .parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

/// Reads the commit stored in column `name`, when there is one (intake and the worker store only
/// full ids).
fn commit_at(r: &Row<'_>, name: &str) -> Result<Option<CommitId>, rusqlite::Error> {
    let Some(text) = r.get::<_, Option<String>>(name)? else {
        return Ok(None);
    };
    CommitId::parse(&text).map(Some).map_err(|e| {
        let idx = r.as_ref().column_index(name).unwrap_or_default();
        rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))
    })
}

/// A stored job whose recipe or tag does not parse: intake never stores one, but a row written
/// by hand or under older rules may hold one.
struct Unparsed {
    id: i64,
    column: &'static str,
    error: String,
}

/// Reads one `jobs` row; its delivery ids are filled in by [`select_jobs`]. A row whose recipe
/// or tag does not parse is returned as [`Unparsed`].
fn job_from_row(r: &Row<'_>) -> Result<Result<Job, Unparsed>, rusqlite::Error> {
    let id: i64 = r.get("id")?;
    let unparsed = |column, error: String| Unparsed { id, column, error };
    let recipe = match RecipeName::parse(&r.get::<_, String>("recipe")?) {
        Ok(recipe) => recipe,
        Err(e) => return Ok(Err(unparsed("recipe", e.to_string()))),
    };
    let tag = match ReleaseVersion::parse(&r.get::<_, String>("tag")?) {
        Ok(tag) => tag,
        Err(e) => return Ok(Err(unparsed("tag", e.to_string()))),
    };
    let flags: String = r.get("flags")?;
    let resolved = commit_at(r, "resolved_commit")?;
    let hint = commit_at(r, "commit_hint")?;
    Ok(Ok(Job {
        id,
        forge: forge_at(r, r.as_ref().column_index("forge")?)?,
        repo: r.get("repo")?,
        recipe,
        tag,
        commit: resolved.or(hint),
        ref_sha: r.get("ref_sha")?,
        // The journal writes only the names `as_str` returns; anything else reads as failed so
        // it is never claimed.
        state: r
            .get::<_, String>("state")?
            .parse()
            .unwrap_or(JobState::Failed),
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
    }))
}

/// Returns the jobs `SELECT * FROM jobs {tail}` finds, each with its delivery ids in arrival
/// order. A job whose recipe or tag does not parse is left out and logged: the claim has ended
/// it ([`Claim::Unreadable`]) and no reader can show it as a recipe's release.
pub(super) fn select_jobs<P: rusqlite::Params>(
    c: &Connection,
    tail: &str,
    params: P,
) -> Result<Vec<Job>, rusqlite::Error> {
    let mut st = c.prepare_cached(&format!("SELECT * FROM jobs {tail}"))?;
    let mut jobs = Vec::new();
    for row in st.query_map(params, job_from_row)? {
        match row? {
            Ok(job) => jobs.push(job),
            Err(Unparsed { id, column, error }) => {
                tracing::warn!(job = id, column, error = %error, "A stored job does not parse; it is left out.");
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Intake, IntakeFact};

    async fn push(journal: &Journal, forge: ForgeKind, repo: &str, recipe: &str, tag: &str) -> i64 {
        let intake = Intake {
            forge,
            delivery: String::new(),
            event: "push".into(),
            fact: IntakeFact::NewTag {
                repo: repo.into(),
                recipe: RecipeName::parse(recipe).expect("valid name"),
                tag: tag.parse().expect("a release tag"),
                ref_sha: None,
                commit_hint: None,
            },
            received_at: "2024-05-01T12:00:00.000000Z".into(),
        };
        journal
            .intake(intake)
            .await
            .expect("journaled")
            .job
            .expect("a job")
    }

    #[tokio::test]
    async fn the_job_for_a_tag_is_the_newest_of_its_recipe_from_any_forge() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (journal, _writer) = Journal::open(&dir.path().join("j.sqlite3")).expect("opens");
        let app = RecipeName::parse("app").expect("valid name");
        push(&journal, ForgeKind::Gitea, "o/app", "app", "1.0.0+1").await;
        let newer = push(&journal, ForgeKind::Forgejo, "o/app", "app", "1.0.0+1").await;
        push(&journal, ForgeKind::Gitea, "o/other", "other", "2.0.0+1").await;
        let found = journal.job_for(&app, "1.0.0+1").await.expect("read");
        assert_eq!(
            found.map(|j| (j.id, j.forge)),
            Some((newer, ForgeKind::Forgejo))
        );
        assert!(journal
            .job_for(&app, "2.0.0+1")
            .await
            .expect("read")
            .is_none());
        let summary = journal
            .job(newer)
            .await
            .expect("read")
            .expect("the job")
            .summary();
        assert_eq!((summary.recipe, summary.state), (app, JobState::Queued));
    }

    #[tokio::test]
    async fn a_job_whose_row_does_not_parse_ends_as_its_attempt_would_and_is_left_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("j.sqlite3");
        let (journal, _writer) = Journal::open(&path).expect("opens");
        let bad_tag = push(&journal, ForgeKind::Gitea, "o/app", "app", "1.0.0+1").await;
        let bad_recipe = push(&journal, ForgeKind::Gitea, "o/app", "other", "1.0.0+1").await;
        let good = push(&journal, ForgeKind::Gitea, "o/app", "third", "1.0.0+1").await;
        {
            // Rows written by hand (or under older rules): intake never stores these.
            let c = Connection::open(&path).expect("opens");
            c.execute("UPDATE jobs SET tag='v1.0' WHERE id=?1", params![bad_tag])
                .expect("updated");
            c.execute(
                "UPDATE jobs SET recipe='Not/A/Name' WHERE id=?1",
                params![bad_recipe],
            )
            .expect("updated");
        }
        // (job, the state it ends in, what its reason says)
        let cases = [
            (bad_tag, JobState::Skipped, "v1.0 is not a release tag"),
            (bad_recipe, JobState::Failed, "invalid recipe name"),
        ];
        for (id, want_state, want_reason) in cases {
            match claim_at(&journal, id, 1_000).await {
                Claim::Unreadable { state, reason, .. } => {
                    assert_eq!(state, want_state, "{reason}");
                    assert!(reason.contains(want_reason), "{reason}");
                }
                other => panic!("job {id}: {other:?}"),
            }
            assert!(
                matches!(claim_at(&journal, id, 1_000).await, Claim::NotRunnable),
                "job {id} is ended"
            );
        }
        let listed: Vec<i64> = journal
            .jobs()
            .await
            .expect("the other rows still read")
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(listed, [good]);
    }

    /// Claims `id` at `now_ms` with a 1 s lease per attempt and at most 3 attempts.
    async fn claim_at(journal: &Journal, id: i64, now_ms: i64) -> Claim {
        let terms = ClaimTerms {
            now: "2024-05-01T12:00:01.000000Z".into(),
            now_ms,
            max_attempts: 3,
            lease: |attempt| Duration::from_secs(u64::from(attempt)),
        };
        journal.claim(id, terms).await.expect("claimed")
    }

    /// What happens to a job between two claims.
    #[derive(Clone, Copy, Debug)]
    enum Then {
        /// The process dies: nothing is recorded.
        Dies,
        /// The attempt fails and is retried.
        Retries,
    }

    #[tokio::test]
    async fn a_job_that_never_finishes_is_failed_after_its_last_attempt() {
        // (what it shows, what each attempt does, the reason the job ends with)
        let cases: &[(&str, &[Then], &str)] = &[
            (
                "three attempts that each stop the process fail the job as not finished three times",
                &[Then::Dies, Then::Dies, Then::Dies],
                "did not finish 3 times",
            ),
            (
                "failures and then a stop name both",
                &[Then::Retries, Then::Retries, Then::Dies],
                "gave up after 3 attempts: the last 1 did not finish",
            ),
            (
                "a recorded failure resets the count of unfinished attempts",
                &[Then::Dies, Then::Retries, Then::Dies],
                "gave up after 3 attempts: the last 1 did not finish",
            ),
        ];
        for (says, attempts, reason) in cases {
            let dir = tempfile::tempdir().expect("temp dir");
            let (journal, _writer) = Journal::open(&dir.path().join("j.sqlite3")).expect("opens");
            let id = push(&journal, ForgeKind::Gitea, "o/app", "app", "1.0.0+1").await;
            let mut now = 1_000_000;
            for (n, then) in attempts.iter().enumerate() {
                let Claim::Started(job) = claim_at(&journal, id, now).await else {
                    panic!("{says}: attempt {} is claimed", n + 1);
                };
                assert_eq!(job.attempts as usize, n + 1, "{says}");
                let lease = 1000 * (n as i64 + 1);
                assert_eq!(
                    job.next_attempt_ms,
                    now + lease,
                    "{says}: the claim leases the job"
                );
                assert!(
                    journal
                        .runnable(now + lease - 1, 10, Vec::new())
                        .await
                        .expect("read")
                        .is_empty(),
                    "{says}: a leased job is not due"
                );
                if let Then::Retries = then {
                    let retry = JobUpdate::Retry {
                        commit: None,
                        error: "unreachable".into(),
                        next_attempt_ms: now + 10,
                    };
                    journal
                        .finish(id, retry, "t".into())
                        .await
                        .expect("recorded");
                    now += 10;
                } else {
                    now += lease;
                }
                let due: Vec<i64> = journal
                    .runnable(now, 10, Vec::new())
                    .await
                    .expect("read")
                    .iter()
                    .map(|j| j.id)
                    .collect();
                assert_eq!(due, [id], "{says}: due again after {then:?}");
            }
            let Claim::GaveUp(job) = claim_at(&journal, id, now).await else {
                panic!("{says}: the job is refused once it has had every attempt");
            };
            assert_eq!(job.state, JobState::Failed, "{says}");
            assert_eq!(job.attempts, 3, "{says}: the refusal is not an attempt");
            let error = job.error.unwrap_or_default();
            assert!(error.contains(reason), "{says}: {error}");
            assert!(
                matches!(claim_at(&journal, id, now).await, Claim::NotRunnable),
                "{says}"
            );
            assert!(
                journal
                    .runnable(i64::MAX, 10, Vec::new())
                    .await
                    .expect("read")
                    .is_empty(),
                "{says}"
            );
        }
    }
}
