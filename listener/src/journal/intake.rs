//! Intake: a verified delivery becomes one delivery row and, for a new tag, one job.
//!
//! This is where replays and the push/create/release triple of one tag fold into one job, where a
//! tag whose ref value changed is flagged as moved, and where a deleted tag flags its job without
//! triggering anything. A replay of one delivery (same forge, same delivery id) adds no row: it is
//! counted on the first one and answered as the replay of it. Each intake runs in one write of the
//! group commit.

use canon_shared::commit::CommitId;
use canon_shared::forge::ForgeKind;
use canon_shared::recipe::RecipeName;
use canon_shared::version::ReleaseVersion;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{Journal, JournalError};

/// How many flags a job keeps, the newest: a tag moved back and forth by many deliveries must not
/// grow its job's row without bound.
pub(super) const MAX_FLAGS: usize = 20;

/// The event of a delivery the listener made itself by polling an upstream's refs
/// ([`crate::poll`]), rather than a forge's webhook.
pub const POLL_EVENT: &str = "poll";

/// What a journaled delivery was, as decided at intake.
#[derive(Debug, Clone)]
pub enum IntakeFact {
    /// A new tag of an enrolled recipe.
    NewTag {
        /// `owner/name` from the payload.
        repo: String,
        /// The enrolled recipe it maps to.
        recipe: RecipeName,
        /// The release tag.
        tag: ReleaseVersion,
        /// The ref value sent, when any.
        ref_sha: Option<String>,
        /// A commit the payload names, when any.
        commit_hint: Option<CommitId>,
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
    /// A signed delivery canon refuses to act on, with the reason: it names an enrolled
    /// recipe's repository but comes from another kind of forge than the recipe's upstream.
    Rejected {
        /// `owner/name` from the payload.
        repo: Option<String>,
        /// The recipe it named.
        recipe: Option<RecipeName>,
        /// The tag, when the payload names one.
        tag: Option<String>,
        /// Why.
        reason: String,
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
    /// Refused (a signed delivery from the wrong kind of forge).
    Rejected,
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
            Outcome::Rejected => "rejected",
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

impl Journal {
    /// Journals a verified delivery durably and returns what it became.
    pub async fn intake(&self, intake: Intake) -> Result<IntakeResult, JournalError> {
        self.write(move |c| intake_tx(c, &intake)).await
    }

    /// Journals an ignored delivery without waiting for durability.
    pub fn intake_later(&self, intake: Intake) -> bool {
        self.write_later(move |c| intake_tx(c, &intake).map(|_| ()))
    }
}

/// Journals one delivery inside the current write: answers a replay from its first row, else
/// finds or creates its job, flags a moved or deleted tag, and stores the delivery row with its
/// outcome.
fn intake_tx(c: &Connection, i: &Intake) -> Result<IntakeResult, rusqlite::Error> {
    if let Some(replay) = replay_of(c, i)? {
        return Ok(replay);
    }
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (forge, delivery) WHERE delivery != '' DO UPDATE SET
               event=excluded.event, repo=excluded.repo, recipe=excluded.recipe, tag=excluded.tag,
               ref_sha=excluded.ref_sha, outcome=excluded.outcome, reason=excluded.reason,
               job=excluded.job, repeats=repeats + 1",
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
            let tag = tag.to_string();
            let commit_hint = commit_hint.as_ref().map(CommitId::as_str);
            // A poll folds into any job of the tag, and a webhook into a job a poll made, so a
            // tag seen both ways is one job whichever came first.
            let existing: Option<(i64, Option<String>)> = c
                .prepare_cached(
                    "SELECT id, ref_sha FROM jobs WHERE recipe=?2 AND tag=?3 AND (forge=?1 OR ?4
                       OR id IN (SELECT job FROM deliveries WHERE event=?5 AND recipe=?2 AND tag=?3))
                     ORDER BY forge=?1 DESC, id LIMIT 1",
                )?
                .query_row(
                    params![forge, recipe.as_str(), tag, i.event == POLL_EVENT, POLL_EVENT],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
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
                            "UPDATE jobs SET ref_sha=?2, commit_hint=COALESCE(?3, commit_hint)
                             WHERE id=?1",
                        )?
                        .execute(params![id, new, commit_hint])?;
                        add_flag(c, id, &flag, &i.received_at)?;
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
                Some(&tag),
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
            let job: Option<i64> = match recipe {
                Some(recipe) => c
                    .prepare_cached("SELECT id FROM jobs WHERE forge=?1 AND recipe=?2 AND tag=?3")?
                    .query_row(params![forge, recipe.as_str(), tag], |r| r.get(0))
                    .optional()?,
                None => None,
            };
            if let Some(id) = job {
                let flag = format!("{}: tag deleted upstream", i.received_at);
                add_flag(c, id, &flag, &i.received_at)?;
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
        }
        | IntakeFact::Rejected {
            repo,
            recipe,
            tag,
            reason,
        } => {
            let outcome = if matches!(i.fact, IntakeFact::Rejected { .. }) {
                Outcome::Rejected
            } else {
                Outcome::Ignored
            };
            insert_delivery(
                repo.as_deref(),
                recipe.as_ref().map(|r| r.as_str()),
                tag.as_deref(),
                None,
                outcome,
                Some(reason),
                None,
            )?;
            Ok(IntakeResult { outcome, job: None })
        }
    }
}

/// Returns what the first delivery with the same forge and delivery id became, after counting
/// this one on its row; `None` for a delivery not seen before (or without an id), and for one
/// that was ignored before but is not now (say its recipe was enrolled since): that one is
/// journaled anew over its row.
fn replay_of(c: &Connection, i: &Intake) -> Result<Option<IntakeResult>, rusqlite::Error> {
    if i.delivery.is_empty() {
        return Ok(None);
    }
    let stored: Option<(i64, String, Option<i64>)> = c
        .prepare_cached("SELECT seq, outcome, job FROM deliveries WHERE forge=?1 AND delivery=?2")?
        .query_row(params![i.forge.as_str(), i.delivery], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((seq, outcome, job)) = stored else {
        return Ok(None);
    };
    let outcome = match outcome.as_str() {
        "ignored" if !matches!(i.fact, IntakeFact::Ignored { .. }) => return Ok(None),
        "ignored" => Outcome::Ignored,
        "rejected" if !matches!(i.fact, IntakeFact::Rejected { .. }) => return Ok(None),
        "rejected" => Outcome::Rejected,
        "deleted" => Outcome::Deleted,
        // The job exists since the first time: a replay lands on it as a duplicate, as a second
        // delivery of the same tag does.
        _ => Outcome::Duplicate,
    };
    c.prepare_cached("UPDATE deliveries SET repeats = repeats + 1 WHERE seq=?1")?
        .execute(params![seq])?;
    Ok(Some(IntakeResult { outcome, job }))
}

/// Appends `flag` to job `id`'s flags, keeping the newest [`MAX_FLAGS`].
fn add_flag(c: &Connection, id: i64, flag: &str, now: &str) -> Result<(), rusqlite::Error> {
    let flags: String = c
        .prepare_cached("SELECT flags FROM jobs WHERE id=?1")?
        .query_row(params![id], |r| r.get(0))?;
    let mut kept: Vec<&str> = flags.lines().filter(|l| !l.is_empty()).collect();
    kept.push(flag);
    let newest = &kept[kept.len().saturating_sub(MAX_FLAGS)..];
    let mut text = newest.join("\n");
    text.push('\n');
    c.prepare_cached("UPDATE jobs SET flags=?2, updated_at=?3 WHERE id=?1")?
        .execute(params![id, text, now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Job, JobUpdate};

    const A: &str = "7c3a3b1e0f2d4c5b6a79881726354433221100ff";
    const B: &str = "0123456789abcdef0123456789abcdef01234567";
    const HINT: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// A journal in a temp dir; the dir lives as long as the journal is used.
    fn journal() -> (Journal, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (journal, _writer) =
            Journal::open(&dir.path().join("listener.sqlite3")).expect("opens");
        (journal, dir)
    }

    fn recipe() -> RecipeName {
        RecipeName::parse("app").expect("valid name")
    }

    /// What one delivery says, before it is stamped with a forge and a delivery id.
    #[derive(Clone)]
    enum Says {
        /// A tag push: the ref value and the head commit.
        Push(&'static str, &'static str),
        /// A tag create: the ref value only.
        Create(&'static str, &'static str),
        /// A published release: no SHA at all.
        Release(&'static str),
        /// A tag deletion.
        Delete(&'static str),
        /// Something verified but not acted on.
        Ignore,
    }

    fn fact(repo: &str, says: &Says) -> (&'static str, IntakeFact) {
        let new_tag = |tag: &str, ref_sha: Option<&str>, hint: Option<&str>| IntakeFact::NewTag {
            repo: repo.to_string(),
            recipe: recipe(),
            tag: ReleaseVersion::parse(tag).expect("a release tag"),
            ref_sha: ref_sha.map(str::to_string),
            commit_hint: hint.map(|h| CommitId::parse(h).expect("a full id")),
        };
        match says {
            Says::Push(tag, sha) => ("push", new_tag(tag, Some(sha), Some(HINT))),
            Says::Create(tag, sha) => ("create", new_tag(tag, Some(sha), None)),
            Says::Release(tag) => ("release", new_tag(tag, None, None)),
            Says::Delete(tag) => (
                "delete",
                IntakeFact::Deleted {
                    repo: repo.to_string(),
                    recipe: Some(recipe()),
                    tag: tag.to_string(),
                },
            ),
            Says::Ignore => (
                "issues",
                IntakeFact::Ignored {
                    repo: Some(repo.to_string()),
                    recipe: None,
                    tag: None,
                    reason: "event issues is not a tag event".into(),
                },
            ),
        }
    }

    fn intake(forge: ForgeKind, repo: &str, delivery: &str, says: &Says) -> Intake {
        let (event, fact) = fact(repo, says);
        Intake {
            forge,
            delivery: delivery.to_string(),
            event: event.to_string(),
            fact,
            received_at: "2024-05-01T12:00:00.000000Z".into(),
        }
    }

    /// One delivery of a case: who sent it, for which repository, and what it says.
    type Delivery = (ForgeKind, &'static str, Says);

    struct Case {
        /// What the case shows, as a sentence.
        says: &'static str,
        deliveries: Vec<Delivery>,
        outcomes: Vec<Outcome>,
        jobs: usize,
        /// Further checks on the jobs, newest first.
        check: fn(&[Job]),
    }

    fn nothing(_: &[Job]) {}

    #[tokio::test]
    async fn each_delivery_sequence_journals_the_expected_outcomes_and_jobs() {
        use ForgeKind::{GitHub, Gitea};
        use Outcome::*;
        let cases = [
            Case {
                says: "a new tag of an enrolled recipe makes one queued job",
                deliveries: vec![(Gitea, "o/app", Says::Push("1.0.0+1", A))],
                outcomes: vec![Accepted],
                jobs: 1,
                check: |jobs| {
                    assert_eq!(jobs[0].state, crate::journal::JobState::Queued);
                    assert_eq!(jobs[0].ref_sha.as_deref(), Some(A));
                    assert_eq!(jobs[0].commit.as_deref(), Some(HINT));
                    assert!(jobs[0].flags.is_empty());
                },
            },
            Case {
                says: "a replayed delivery folds into the existing job",
                deliveries: vec![
                    (Gitea, "o/app", Says::Push("1.0.0+1", A)),
                    (Gitea, "o/app", Says::Push("1.0.0+1", A)),
                ],
                outcomes: vec![Accepted, Duplicate],
                jobs: 1,
                check: |jobs| assert!(jobs[0].flags.is_empty(), "{:?}", jobs[0].flags),
            },
            Case {
                says: "push, create and release for one tag make one job",
                deliveries: vec![
                    (Gitea, "o/app", Says::Push("1.0.0+1", A)),
                    (Gitea, "o/app", Says::Create("1.0.0+1", A)),
                    (Gitea, "o/app", Says::Release("1.0.0+1")),
                ],
                outcomes: vec![Accepted, Duplicate, Duplicate],
                jobs: 1,
                check: |jobs| assert_eq!(jobs[0].ref_sha.as_deref(), Some(A)),
            },
            Case {
                says: "a release before the push gets the push's ref and commit hint",
                deliveries: vec![
                    (Gitea, "o/app", Says::Release("1.0.0+1")),
                    (Gitea, "o/app", Says::Push("1.0.0+1", A)),
                ],
                outcomes: vec![Accepted, Duplicate],
                jobs: 1,
                check: |jobs| {
                    assert_eq!(jobs[0].ref_sha.as_deref(), Some(A));
                    assert_eq!(jobs[0].commit.as_deref(), Some(HINT));
                },
            },
            Case {
                says: "a tag whose ref changes is recorded as moved and its job flagged",
                deliveries: vec![
                    (Gitea, "o/app", Says::Push("1.0.0+1", A)),
                    (Gitea, "o/app", Says::Push("1.0.0+1", B)),
                ],
                outcomes: vec![Accepted, Moved],
                jobs: 1,
                check: |jobs| {
                    assert_eq!(jobs[0].ref_sha.as_deref(), Some(B));
                    assert_eq!(jobs[0].flags.len(), 1, "{:?}", jobs[0].flags);
                    assert!(
                        jobs[0].flags[0].contains(&format!("tag moved: ref was {A}, now {B}")),
                        "{:?}",
                        jobs[0].flags
                    );
                },
            },
            Case {
                says: "a release without a ref never counts as a move",
                deliveries: vec![
                    (Gitea, "o/app", Says::Push("1.0.0+1", A)),
                    (Gitea, "o/app", Says::Release("1.0.0+1")),
                    (Gitea, "o/app", Says::Create("1.0.0+1", A)),
                ],
                outcomes: vec![Accepted, Duplicate, Duplicate],
                jobs: 1,
                check: |jobs| assert!(jobs[0].flags.is_empty(), "{:?}", jobs[0].flags),
            },
            Case {
                says: "a deleted tag flags its job and leaves it queued",
                deliveries: vec![
                    (Gitea, "o/app", Says::Push("1.0.0+1", A)),
                    (Gitea, "o/app", Says::Delete("1.0.0+1")),
                ],
                outcomes: vec![Accepted, Deleted],
                jobs: 1,
                check: |jobs| {
                    assert_eq!(jobs[0].state, crate::journal::JobState::Queued);
                    assert_eq!(jobs[0].flags.len(), 1, "{:?}", jobs[0].flags);
                    assert!(jobs[0].flags[0].ends_with("tag deleted upstream"));
                },
            },
            Case {
                says: "a deleted tag that never had a job makes none",
                deliveries: vec![(Gitea, "o/app", Says::Delete("1.0.0+1"))],
                outcomes: vec![Deleted],
                jobs: 0,
                check: nothing,
            },
            Case {
                says: "an ignored delivery makes no job",
                deliveries: vec![(Gitea, "o/app", Says::Ignore)],
                outcomes: vec![Ignored],
                jobs: 0,
                check: nothing,
            },
            Case {
                says: "two tags of one repository are two jobs",
                deliveries: vec![
                    (Gitea, "o/app", Says::Push("1.0.0+1", A)),
                    (Gitea, "o/app", Says::Push("1.0.1+1", B)),
                ],
                outcomes: vec![Accepted, Accepted],
                jobs: 2,
                check: nothing,
            },
            Case {
                says: "one tag of one recipe named by two repositories is one job",
                deliveries: vec![
                    (Gitea, "o/app", Says::Push("1.0.0+1", A)),
                    (Gitea, "renamed/app", Says::Push("1.0.0+1", A)),
                ],
                outcomes: vec![Accepted, Duplicate],
                jobs: 1,
                check: nothing,
            },
            Case {
                says: "one tag from two forges is two jobs",
                deliveries: vec![
                    (Gitea, "o/app", Says::Push("1.0.0+1", A)),
                    (GitHub, "o/app", Says::Push("1.0.0+1", A)),
                ],
                outcomes: vec![Accepted, Accepted],
                jobs: 2,
                check: |jobs| {
                    let forges: Vec<ForgeKind> = jobs.iter().map(|j| j.forge).collect();
                    assert_eq!(forges, [GitHub, Gitea]);
                },
            },
        ];
        for case in cases {
            let (journal, _dir) = journal();
            let mut outcomes = Vec::new();
            let mut first_job = None;
            for (n, (forge, repo, says)) in case.deliveries.iter().enumerate() {
                let r = journal
                    .intake(intake(*forge, repo, &format!("d-{n}"), says))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", case.says));
                if case.jobs == 1 && r.job.is_some() {
                    // Every delivery that leads to a job leads to the same one.
                    assert_eq!(*first_job.get_or_insert(r.job), r.job, "{}", case.says);
                }
                outcomes.push(r.outcome);
            }
            assert_eq!(outcomes, case.outcomes, "{}", case.says);
            let jobs = journal.jobs().await.expect("jobs read");
            assert_eq!(jobs.len(), case.jobs, "{}: {jobs:?}", case.says);
            let rows = journal.deliveries(100).await.expect("deliveries read");
            let stored: Vec<&str> = rows.iter().rev().map(|d| d.outcome.as_str()).collect();
            let want: Vec<&str> = case.outcomes.iter().map(|o| o.as_str()).collect();
            assert_eq!(stored, want, "{}: every delivery is stored", case.says);
            if case.jobs == 1 {
                let linked = rows.iter().filter(|d| d.job.is_some()).count();
                assert_eq!(
                    jobs[0].deliveries.len(),
                    linked,
                    "{}: the job lists its deliveries",
                    case.says
                );
            }
            (case.check)(&jobs);
        }
    }

    #[tokio::test]
    async fn a_delivery_for_a_finished_job_does_not_queue_it_again() {
        let (journal, _dir) = journal();
        let first = journal
            .intake(intake(
                ForgeKind::Gitea,
                "o/app",
                "d-1",
                &Says::Push("1.0.0+1", A),
            ))
            .await
            .expect("journaled");
        let id = first.job.expect("a job");
        let terms = crate::journal::ClaimTerms {
            now: "2024-05-01T12:00:01.000000Z".into(),
            now_ms: 0,
            max_attempts: 8,
            lease: |_| std::time::Duration::from_secs(10),
        };
        let claimed = journal.claim(id, terms).await.expect("claimed");
        assert!(matches!(claimed, crate::journal::Claim::Started(_)));
        let done = JobUpdate::Done {
            commit: CommitId::parse(A).expect("a full id"),
            build: 7,
            link: None,
            note: None,
        };
        journal
            .finish(id, done, "2024-05-01T12:00:02.000000Z".into())
            .await
            .expect("finished");
        let replay = journal
            .intake(intake(
                ForgeKind::Gitea,
                "o/app",
                "d-2",
                &Says::Push("1.0.0+1", A),
            ))
            .await
            .expect("journaled");
        assert_eq!(replay.outcome, Outcome::Duplicate);
        assert_eq!(replay.job, Some(id));
        let job = journal.job(id).await.expect("read").expect("the job");
        assert_eq!(job.state, crate::journal::JobState::Done);
        assert_eq!(job.build, Some(7));
        assert!(journal
            .runnable(i64::MAX, 10, Vec::new())
            .await
            .expect("read")
            .is_empty());
    }

    #[tokio::test]
    async fn a_moved_tag_names_both_refs_and_the_delivery_and_a_missing_id_shows_as_a_dash() {
        let (journal, _dir) = journal();
        for (delivery, sha) in [("d-1", A), ("d-2", B), ("", A)] {
            journal
                .intake(intake(
                    ForgeKind::Gitea,
                    "o/app",
                    delivery,
                    &Says::Push("1.0.0+1", sha),
                ))
                .await
                .expect("journaled");
        }
        let jobs = journal.jobs().await.expect("read");
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0].flags,
            [
                format!(
                    "2024-05-01T12:00:00.000000Z: tag moved: ref was {A}, now {B} (delivery d-2)"
                ),
                format!(
                    "2024-05-01T12:00:00.000000Z: tag moved: ref was {B}, now {A} (delivery -)"
                ),
            ]
        );
        // Deliveries without an id are stored but not listed on the job.
        assert_eq!(jobs[0].deliveries, ["d-1", "d-2"]);
        let reasons: Vec<Option<String>> = journal
            .deliveries(10)
            .await
            .expect("read")
            .into_iter()
            .map(|d| d.reason)
            .collect();
        assert_eq!(
            reasons,
            [
                Some(format!("tag moved from {B} to {A}")),
                Some(format!("tag moved from {A} to {B}")),
                None
            ]
        );
    }

    #[tokio::test]
    async fn a_replayed_delivery_id_adds_no_row() {
        use ForgeKind::{GitHub, Gitea};
        use Outcome::*;
        // (what it shows, deliveries with their ids, outcomes, rows stored, jobs, flags on the job)
        type Case = (
            &'static str,
            Vec<(ForgeKind, &'static str, Says)>,
            Vec<Outcome>,
            usize,
            usize,
            usize,
        );
        let cases: Vec<Case> = vec![
            (
                "a replay of one delivery id is counted on its row and answered as a duplicate",
                vec![
                    (Gitea, "d-1", Says::Push("1.0.0+1", A)),
                    (Gitea, "d-1", Says::Push("1.0.0+1", A)),
                    (Gitea, "d-1", Says::Push("1.0.0+1", A)),
                ],
                vec![Accepted, Duplicate, Duplicate],
                1,
                1,
                0,
            ),
            (
                "the same delivery id from another forge is another delivery",
                vec![
                    (Gitea, "d-1", Says::Push("1.0.0+1", A)),
                    (GitHub, "d-1", Says::Push("1.0.0+1", A)),
                ],
                vec![Accepted, Accepted],
                2,
                2,
                0,
            ),
            (
                "a replayed deletion flags its job once",
                vec![
                    (Gitea, "d-1", Says::Push("1.0.0+1", A)),
                    (Gitea, "d-2", Says::Delete("1.0.0+1")),
                    (Gitea, "d-2", Says::Delete("1.0.0+1")),
                ],
                vec![Accepted, Deleted, Deleted],
                2,
                1,
                1,
            ),
            (
                "a replayed ignored delivery stays one ignored row",
                vec![(Gitea, "d-1", Says::Ignore), (Gitea, "d-1", Says::Ignore)],
                vec![Ignored, Ignored],
                1,
                0,
                0,
            ),
            (
                "a delivery ignored before and acted on now is journaled over its row",
                vec![
                    (Gitea, "d-1", Says::Ignore),
                    (Gitea, "d-1", Says::Push("1.0.0+1", A)),
                ],
                vec![Ignored, Accepted],
                1,
                1,
                0,
            ),
            (
                "deliveries without an id cannot be told apart and are each stored",
                vec![
                    (Gitea, "", Says::Push("1.0.0+1", A)),
                    (Gitea, "", Says::Push("1.0.0+1", A)),
                ],
                vec![Accepted, Duplicate],
                2,
                1,
                0,
            ),
        ];
        for (says, deliveries, want, rows, jobs, flags) in cases {
            let (journal, _dir) = journal();
            let mut outcomes = Vec::new();
            for (forge, id, what) in &deliveries {
                let r = journal
                    .intake(intake(*forge, "o/app", id, what))
                    .await
                    .unwrap_or_else(|e| panic!("{says}: {e}"));
                outcomes.push(r.outcome);
            }
            assert_eq!(outcomes, want, "{says}");
            let stored = journal.deliveries(100).await.expect("read");
            assert_eq!(stored.len(), rows, "{says}: {stored:?}");
            let repeats: u32 = stored.iter().map(|d| d.repeats).sum();
            assert_eq!(
                repeats as usize + rows,
                deliveries.len(),
                "{says}: every arrival is counted"
            );
            let found = journal.jobs().await.expect("read");
            assert_eq!(found.len(), jobs, "{says}: {found:?}");
            let flagged: usize = found.iter().map(|j| j.flags.len()).sum();
            assert_eq!(flagged, flags, "{says}: {found:?}");
        }
    }

    #[tokio::test]
    async fn a_job_keeps_only_its_newest_flags() {
        let (journal, _dir) = journal();
        let moves = MAX_FLAGS + 5;
        for n in 0..=moves {
            let sha = if n % 2 == 0 { A } else { B };
            journal
                .intake(intake(
                    ForgeKind::Gitea,
                    "o/app",
                    &format!("d-{n}"),
                    &Says::Push("1.0.0+1", sha),
                ))
                .await
                .expect("journaled");
        }
        let jobs = journal.jobs().await.expect("read");
        assert_eq!(jobs[0].flags.len(), MAX_FLAGS, "{:?}", jobs[0].flags);
        assert!(
            jobs[0].flags[0].ends_with("(delivery d-6)"),
            "the oldest moves are dropped: {:?}",
            jobs[0].flags
        );
        assert!(
            jobs[0].flags[MAX_FLAGS - 1].ends_with(&format!("(delivery d-{moves})")),
            "the newest move is kept: {:?}",
            jobs[0].flags
        );
    }

    #[tokio::test]
    async fn two_recipes_whose_repository_names_show_alike_are_two_jobs() {
        // The repository name is shown cut to 64 characters: two long names can look the same.
        let shown = format!("org/{}", "a".repeat(60));
        let (journal, _dir) = journal();
        for (n, name) in ["long-one", "long-two"].into_iter().enumerate() {
            let fact = IntakeFact::NewTag {
                repo: shown.clone(),
                recipe: RecipeName::parse(name).expect("valid name"),
                tag: ReleaseVersion::parse("1.0.0+1").expect("a release tag"),
                ref_sha: Some(A.into()),
                commit_hint: None,
            };
            let r = journal
                .intake(Intake {
                    forge: ForgeKind::Gitea,
                    delivery: format!("d-{n}"),
                    event: "push".into(),
                    fact,
                    received_at: "2024-05-01T12:00:00.000000Z".into(),
                })
                .await
                .expect("journaled");
            assert_eq!(r.outcome, Outcome::Accepted, "{name}");
        }
        let mut recipes: Vec<String> = journal
            .jobs()
            .await
            .expect("read")
            .into_iter()
            .map(|j| j.recipe.to_string())
            .collect();
        recipes.sort();
        assert_eq!(recipes, ["long-one", "long-two"]);
    }

    #[tokio::test]
    async fn jobs_an_older_journal_kept_per_repository_are_one_job_per_recipe_when_opened() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("listener.sqlite3");
        {
            // The shape an older listener wrote: jobs keyed on the repository name as shown.
            let c = rusqlite::Connection::open(&path).expect("opens");
            c.execute_batch(
                "PRAGMA foreign_keys=ON;
                 CREATE TABLE jobs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, forge TEXT NOT NULL,
                    repo TEXT NOT NULL, recipe TEXT NOT NULL, tag TEXT NOT NULL, ref_sha TEXT,
                    commit_hint TEXT, resolved_commit TEXT, state TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_ms INTEGER NOT NULL DEFAULT 0, build INTEGER,
                    build_link TEXT, error TEXT, flags TEXT NOT NULL DEFAULT '',
                    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                    UNIQUE (forge, repo, tag));
                 CREATE TABLE deliveries (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, delivery TEXT NOT NULL,
                    forge TEXT NOT NULL, event TEXT NOT NULL, repo TEXT, recipe TEXT, tag TEXT,
                    ref_sha TEXT, outcome TEXT NOT NULL, reason TEXT,
                    job INTEGER REFERENCES jobs (id), received_at TEXT NOT NULL);
                 INSERT INTO jobs (forge, repo, recipe, tag, state, build, flags, created_at, updated_at) VALUES
                    ('gitea', 'o/app', 'app', '1.0.0+1', 'done', 7, 'moved once', 't1', 't1'),
                    ('gitea', 'renamed/app', 'app', '1.0.0+1', 'queued', NULL, 'deleted', 't2', 't2'),
                    ('gitea', 'o/app', 'app', '1.0.1+1', 'queued', NULL, '', 't3', 't3');
                 INSERT INTO deliveries (delivery, forge, event, repo, recipe, tag, outcome, job, received_at) VALUES
                    ('d-1', 'gitea', 'push', 'o/app', 'app', '1.0.0+1', 'accepted', 1, 't1'),
                    ('d-2', 'gitea', 'push', 'renamed/app', 'app', '1.0.0+1', 'accepted', 2, 't2'),
                    ('d-3', 'gitea', 'push', 'o/app', 'app', '1.0.1+1', 'accepted', 3, 't3');",
            )
            .expect("old shape written");
        }
        let (journal, _writer) = Journal::open(&path).expect("opens and migrates");
        let jobs = journal.jobs().await.expect("read");
        let mut seen: Vec<(i64, String, String, Vec<String>)> = jobs
            .iter()
            .map(|j| {
                (
                    j.id,
                    j.tag.to_string(),
                    j.state.as_str().to_string(),
                    j.flags.clone(),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                (
                    1,
                    "1.0.0+1".to_string(),
                    "done".to_string(),
                    vec!["moved once".to_string(), "deleted".to_string()]
                ),
                (3, "1.0.1+1".to_string(), "queued".to_string(), vec![]),
            ]
        );
        let first = jobs.iter().find(|j| j.id == 1).expect("job 1");
        assert_eq!(
            first.deliveries.len(),
            2,
            "both deliveries point at the kept job"
        );
        // The new key holds: the same tag again is a duplicate of the kept job.
        let again = journal
            .intake(intake(
                ForgeKind::Gitea,
                "renamed/app",
                "d-4",
                &Says::Push("1.0.0+1", A),
            ))
            .await
            .expect("journaled");
        assert_eq!(again.job, Some(1));
    }

    #[tokio::test]
    async fn a_journal_with_replayed_rows_from_before_is_folded_when_opened() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("listener.sqlite3");
        {
            // The shape an older listener wrote: no repeats column, no unique delivery id.
            let c = rusqlite::Connection::open(&path).expect("opens");
            c.execute_batch(
                "CREATE TABLE deliveries (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, delivery TEXT NOT NULL,
                    forge TEXT NOT NULL, event TEXT NOT NULL, repo TEXT, recipe TEXT, tag TEXT,
                    ref_sha TEXT, outcome TEXT NOT NULL, reason TEXT, job INTEGER,
                    received_at TEXT NOT NULL);
                 INSERT INTO deliveries (delivery, forge, event, outcome, received_at) VALUES
                    ('d-1', 'gitea', 'push', 'ignored', 't1'),
                    ('d-1', 'gitea', 'push', 'ignored', 't2'),
                    ('d-1', 'gitea', 'push', 'ignored', 't3'),
                    ('d-1', 'github', 'push', 'ignored', 't4'),
                    ('', 'gitea', 'push', 'ignored', 't5'),
                    ('', 'gitea', 'push', 'ignored', 't6');",
            )
            .expect("old shape written");
        }
        let (journal, _writer) = Journal::open(&path).expect("opens and migrates");
        let rows: Vec<(String, String, u32)> = journal
            .deliveries(10)
            .await
            .expect("read")
            .into_iter()
            .rev()
            .map(|d| (d.delivery, d.received_at, d.repeats))
            .collect();
        let want = [
            ("d-1", "t1", 2),
            ("d-1", "t4", 0),
            ("", "t5", 0),
            ("", "t6", 0),
        ];
        let want: Vec<(String, String, u32)> = want
            .iter()
            .map(|(d, t, n)| (d.to_string(), t.to_string(), *n))
            .collect();
        assert_eq!(rows, want);
        let again = journal
            .intake(intake(ForgeKind::Gitea, "o/app", "d-1", &Says::Ignore))
            .await
            .expect("journaled");
        assert_eq!(again.outcome, Outcome::Ignored);
        assert_eq!(journal.delivery_count().await.expect("counted"), 4);
    }
}
