//! canon-listener end to end, in process: recorded payloads replayed signed, every rejection
//! path, dedupe, moved tags, the worker against real git repos and a loopback Drone stand-in
//! that fails and recovers, the API (with the job lookup read by canon-shared's own client, the
//! contract test of `canon_shared::listener_api`), metrics, the status page's text and narrow
//! layout, and the badge's drawn text.

use crate::support;

use std::time::Duration;

use canon_listener::app;
use canon_testkit::drone::FakeDrone;
use canon_testkit::git::peeled;
use support::*;

struct App {
    base: String,
    running: app::Running,
    client: reqwest::Client,
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
}

async fn spawn_app(
    local: &[(&str, &[&str])],
    forge: &[(&str, &str)],
    drone: &str,
) -> (App, Vec<Repos>) {
    spawn_app_with(local, forge, drone, &[]).await
}

/// Like [`spawn_app`], with some settings replaced.
async fn spawn_app_with(
    local: &[(&str, &[&str])],
    forge: &[(&str, &str)],
    drone: &str,
    replaced: &[(&str, &str)],
) -> (App, Vec<Repos>) {
    spawn_app_enrolled(local, forge, drone, replaced, |yaml| yaml).await
}

/// Like [`spawn_app_with`], with the enrollment file's text passed through `edit` first.
async fn spawn_app_enrolled(
    local: &[(&str, &[&str])],
    forge: &[(&str, &str)],
    drone: &str,
    replaced: &[(&str, &str)],
    edit: impl FnOnce(String) -> String,
) -> (App, Vec<Repos>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let made: Vec<Repos> = local
        .iter()
        .map(|(n, tags)| repos(&root, n, tags))
        .collect();
    let pairs: Vec<(&str, &Repos)> = local.iter().zip(&made).map(|((n, _), r)| (*n, r)).collect();
    let enrollment = enrollment(&root, &pairs, forge);
    let yaml = std::fs::read_to_string(&enrollment).unwrap();
    std::fs::write(&enrollment, edit(yaml)).unwrap();
    let mut vars = env(&root.join("state"), &enrollment, drone);
    for (key, value) in replaced {
        vars.retain(|(k, _)| k != key);
        vars.push((key.to_string(), value.to_string()));
    }
    let s = settings(vars);
    let running = app::start(&s, Duration::from_secs(5))
        .await
        .expect("the listener starts");
    let base = format!("http://{}", running.addr);
    (
        App {
            base,
            running,
            client: canon_shared::http_client::builder().build().unwrap(),
            _tmp: tmp,
            root,
        },
        made,
    )
}

async fn get_json(app: &App, path: &str) -> serde_json::Value {
    app.client
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test]
async fn every_recorded_payload_replays_signed_with_the_expected_outcome() {
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let (app, _) = spawn_app(
        &[],
        &[
            ("hello", "gogits/hello-world"),
            ("recipe", "upstream/recipe"),
        ],
        &drone_url,
    )
    .await;
    // (file, event header, status, outcome or error fragment)
    let table = [
        (
            "create-tag.go-scm-fixture.json",
            "create",
            200,
            "not a release tag",
        ),
        (
            "create-tag.woodpecker-gitea-fixture.json",
            "create",
            200,
            "not enrolled",
        ),
        ("delete-tag.go-scm-fixture.json", "delete", 202, "deleted"),
        (
            "pull_request-closed.woodpecker-gitea-fixture.json",
            "pull_request",
            200,
            "not a tag event",
        ),
        (
            "pull_request-merged.woodpecker-gitea-fixture.json",
            "pull_request",
            200,
            "not a tag event",
        ),
        (
            "push-branch.woodpecker-gitea-fixture.json",
            "push",
            200,
            "branch",
        ),
        (
            "push-newbranch.codeberg.woodpecker-gitea-fixture.json",
            "push",
            200,
            "branch",
        ),
        (
            "release-published.woodpecker-gitea-fixture.json",
            "release",
            200,
            "not enrolled",
        ),
        (
            "synthetic-push-tag.gitea.json",
            "push",
            200,
            "not a release tag",
        ),
        (
            "api-git-refs-tag.go-scm-fixture.json",
            "push",
            400,
            "malformed push payload",
        ),
    ];
    let files: Vec<_> = std::fs::read_dir(format!("{}/tests/data", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        files.len(),
        table.len(),
        "every fixture has a row: {files:?}"
    );
    for (file, event, status, want) in table {
        let body = fixture(file);
        let (got, v) = deliver(&app.client, &app.base, event, &body).await;
        assert_eq!(got, status, "{file}: {v}");
        assert!(v.to_string().contains(want), "{file}: {v}");
    }

    // The synthetic annotated-tag push, with a release tag: one job; the create and release of
    // the same tag and a replay of the same bytes all land on it.
    let text = String::from_utf8(fixture("synthetic-push-tag.gitea.json")).unwrap();
    let push = text.replace("v1.2.0", "1.2.0+1.0");
    let (s, v) = deliver(&app.client, &app.base, "push", push.as_bytes()).await;
    assert_eq!((s, v["outcome"].as_str()), (202, Some("accepted")), "{v}");
    let job = v["job"].as_i64().unwrap();
    let url = "https://git.example.org/upstream/recipe.git";
    let sha = "7c3a3b1e0f2d4c5b6a79881726354433221100ff";
    for (event, body) in [
        ("push", push.clone().into_bytes()),
        (
            "create",
            create_tag(url, "upstream/recipe", "1.2.0+1.0", sha),
        ),
        ("release", release(url, "upstream/recipe", "1.2.0+1.0")),
    ] {
        let (s, v) = deliver(&app.client, &app.base, event, &body).await;
        assert_eq!(
            (s, v["outcome"].as_str(), v["job"].as_i64()),
            (202, Some("duplicate"), Some(job)),
            "{event}: {v}"
        );
    }
    let jobs = get_json(&app, "/api/jobs").await;
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["recipe"], "recipe");
    assert_eq!(jobs[0]["tag"], "1.2.0+1.0");
    assert_eq!(jobs[0]["deliveries"].as_array().unwrap().len(), 4);
    for key in [
        "id", "forge", "repo", "commit", "state", "attempts", "build", "error",
    ] {
        assert!(jobs[0].get(key).is_some(), "{key}");
    }
    let deliveries = get_json(&app, "/api/deliveries").await;
    let d = deliveries.as_array().unwrap();
    // 9 journaled fixtures (the malformed one is rejected, kept in memory) + 4.
    assert_eq!(
        d.iter().filter(|r| r["outcome"] != "rejected").count(),
        13,
        "{deliveries}"
    );
    assert_eq!(d.iter().filter(|r| r["outcome"] == "rejected").count(), 1);
    for key in [
        "delivery",
        "event",
        "repo",
        "tag",
        "outcome",
        "job",
        "received_at",
    ] {
        assert!(d[0].get(key).is_some(), "{key}");
    }
    // No Drone call happened from intake itself (upstream is not reachable: the job waits).
    assert!(drone.creates().is_empty());
    app.running.stop().await;
}

#[tokio::test]
async fn every_rejection_path_answers_and_stores_nothing() {
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let (app, _) = spawn_app(&[], &[("recipe", "upstream/recipe")], &drone_url).await;
    let url = "https://git.example.org/upstream/recipe.git";
    let body = push_tag(url, "upstream/recipe", "1.0.0+1.0", &"a".repeat(40));
    let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>, path: &'static str| {
        let mut r = app.client.post(format!("{}{path}", app.base)).body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let json = ("content-type", "application/json".to_string());
    let ev = ("x-gitea-event", "push".to_string());
    type Case = (
        Vec<(&'static str, String)>,
        Vec<u8>,
        &'static str,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            vec![json.clone(), ev.clone()],
            body.clone(),
            "/hooks/gitea",
            401,
            "no signature",
        ),
        (
            vec![
                json.clone(),
                ev.clone(),
                ("x-gitea-signature", sign("wrong-secret-0123456789", &body)),
            ],
            body.clone(),
            "/hooks/gitea",
            401,
            "does not match",
        ),
        (
            vec![json.clone(), ev.clone(), ("x-gitea-signature", "zz".into())],
            body.clone(),
            "/hooks/gitea",
            401,
            "malformed",
        ),
        (
            vec![
                ("content-type", "application/x-www-form-urlencoded".into()),
                ev.clone(),
                ("x-gitea-signature", sign(SECRET, &body)),
            ],
            body.clone(),
            "/hooks/gitea",
            415,
            "JSON",
        ),
        (
            vec![
                json.clone(),
                ev.clone(),
                (
                    "x-gitea-signature",
                    sign(SECRET, &vec![b' '; 1024 * 1024 + 1]),
                ),
            ],
            vec![b' '; 1024 * 1024 + 1],
            "/hooks/gitea",
            413,
            "1 MiB",
        ),
        (
            vec![
                json.clone(),
                ev.clone(),
                ("x-gitea-signature", sign(SECRET, b"{not json")),
            ],
            b"{not json".to_vec(),
            "/hooks/gitea",
            400,
            "malformed push payload",
        ),
        (
            vec![json.clone(), ("x-gitea-signature", sign(SECRET, &body))],
            body.clone(),
            "/hooks/gitea",
            400,
            "no event header",
        ),
        (
            vec![
                json.clone(),
                ("x-gitea-event", "wiki".into()),
                ("x-gitea-signature", sign(SECRET, &body)),
            ],
            body.clone(),
            "/hooks/gitea",
            200,
            "not a tag event",
        ),
        (
            vec![
                json.clone(),
                ev.clone(),
                ("x-gitea-signature", sign(SECRET, &body)),
            ],
            body.clone(),
            "/hooks/elsewhere",
            404,
            "not found",
        ),
    ];
    for (headers, b, path, status, want) in cases {
        let (got, text) = post(headers.clone(), b, path).await;
        assert_eq!(got, status, "{headers:?}: {text}");
        assert!(text.contains(want), "{headers:?}: {text}");
        assert!(!text.contains(SECRET));
    }
    let jobs = get_json(&app, "/api/jobs").await;
    assert_eq!(jobs.as_array().unwrap().len(), 0, "nothing stored: {jobs}");
    app.running.state.journal.flush().await.unwrap();
    // Only the verified unknown event was journaled (ignored).
    assert_eq!(app.running.state.journal.delivery_count().await.unwrap(), 1);

    // GitHub's header form and the rotated secret both verify.
    let r = app
        .client
        .post(format!("{}/hooks/github", app.base))
        .header("content-type", "application/json")
        .header("X-GitHub-Event", "push")
        .header(
            "X-Hub-Signature-256",
            format!("sha256={}", sign(ROTATED, &body)),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    // Verified, but the recipe's upstream is on a Gitea host: a GitHub delivery naming the same
    // `owner/name` is someone else's repository, journaled as rejected and starting nothing.
    assert_eq!(r.status().as_u16(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["outcome"], "rejected", "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("git.example.org"),
        "{answer}"
    );
    assert_eq!(
        get_json(&app, "/api/jobs").await.as_array().unwrap().len(),
        0
    );
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("canon_listener_deliveries_total{outcome=\"rejected_signature\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("canon_listener_deliveries_total{outcome=\"rejected_forge\"} 1"),
        "{metrics}"
    );
    app.running.stop().await;
}

#[tokio::test]
async fn a_tag_that_moves_is_recorded_and_flagged_and_deletions_trigger_nothing() {
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let (app, _) = spawn_app(&[], &[("recipe", "upstream/recipe")], &drone_url).await;
    let url = "https://git.example.org/upstream/recipe.git";
    let (a, b) = ("a".repeat(40), "b".repeat(40));
    let (s, v) = deliver(
        &app.client,
        &app.base,
        "push",
        &push_tag(url, "upstream/recipe", "1.0.0+1.0", &a),
    )
    .await;
    assert_eq!((s, v["outcome"].as_str()), (202, Some("accepted")));
    let (s, v) = deliver(
        &app.client,
        &app.base,
        "create",
        &create_tag(url, "upstream/recipe", "1.0.0+1.0", &b),
    )
    .await;
    assert_eq!((s, v["outcome"].as_str()), (202, Some("moved")), "{v}");
    let del = serde_json::to_vec(
        &serde_json::json!({"ref": "1.0.0+1.0", "ref_type": "tag", "pusher_type": "user",
        "repository": {"full_name": "upstream/recipe"}}),
    )
    .unwrap();
    let (s, v) = deliver(&app.client, &app.base, "delete", &del).await;
    assert_eq!((s, v["outcome"].as_str()), (202, Some("deleted")), "{v}");
    let jobs = get_json(&app, "/api/jobs").await;
    let flags = jobs[0]["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 2, "{jobs}");
    assert!(flags[0]
        .as_str()
        .unwrap()
        .contains(&format!("ref was {a}, now {b}")));
    assert!(flags[1].as_str().unwrap().contains("deleted upstream"));
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    app.running.stop().await;
}

/// Posts `body` as a signed Gitea push with delivery id `id`; returns (status, body).
async fn post_push(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let r = client
        .post(format!("{base}/hooks/gitea"))
        .header("content-type", "application/json")
        .header("x-gitea-event", "push")
        .header("x-gitea-delivery", id)
        .header("x-gitea-signature", sign(SECRET, body))
        .body(body.to_vec())
        .send()
        .await
        .expect("the listener answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Returns the size of the journal's database file once its WAL is checkpointed into it.
fn journal_bytes(path: &std::path::Path) -> u64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let busy: i64 = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint ran");
    std::fs::metadata(path).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_storm_of_one_delivery_leaves_one_row_and_the_journal_flat() {
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let (app, _) = spawn_app(&[], &[("recipe", "upstream/recipe")], &drone_url).await;
    let url = "https://git.example.org/upstream/recipe.git";
    let body = push_tag(url, "upstream/recipe", "1.0.0+1.0", &"a".repeat(40));
    let id = "5f0c8a52-3c1e-4d1a-9a57-1d9f0e6b2a10";
    let (s, first) = post_push(&app.client, &app.base, id, &body).await;
    assert_eq!(
        (s, first["outcome"].as_str()),
        (202, Some("accepted")),
        "{first}"
    );
    let job = first["job"].as_i64().unwrap();
    let journal = app.running.state.journal.clone();
    journal.flush().await.unwrap();
    let db = journal.path().to_path_buf();
    let before = journal_bytes(&db);

    // 1,999 replays of the same signed delivery, 16 at a time.
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (sent, client, base, body) = (
            sent.clone(),
            app.client.clone(),
            app.base.clone(),
            body.clone(),
        );
        senders.spawn(async move {
            let mut answers = Vec::new();
            while sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 2_000 {
                answers.push(post_push(&client, &base, id, &body).await);
            }
            answers
        });
    }
    let mut replays = 0;
    while let Some(answers) = senders.join_next().await {
        for (s, v) in answers.unwrap() {
            // Answered as a replay always was: a duplicate of the job it made.
            assert_eq!(
                (s, v["outcome"].as_str(), v["job"].as_i64()),
                (202, Some("duplicate"), Some(job)),
                "{v}"
            );
            replays += 1;
        }
    }
    assert_eq!(replays, 1_999);

    assert_eq!(journal.delivery_count().await.unwrap(), 1);
    let deliveries = get_json(&app, "/api/deliveries").await;
    let rows = deliveries.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{deliveries}");
    assert_eq!(rows[0]["delivery"], id);
    assert_eq!(rows[0]["outcome"], "accepted");
    assert_eq!(rows[0]["repeats"], 1_999);
    let jobs = get_json(&app, "/api/jobs").await;
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(jobs[0]["deliveries"], serde_json::json!([id]));
    let after = journal_bytes(&db);
    // 2,000 rows would be hundreds of KiB; updating one row in place reuses its pages.
    assert!(
        after <= before + 16 * 1024,
        "the journal grew from {before} to {after} bytes"
    );
    app.running.stop().await;
}

#[tokio::test]
async fn jobs_sync_the_mirror_and_build_once_each_while_drone_fails_then_recovers() {
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    drone.fail_next_creates(5);
    let tags = ["1.0.0+1.0", "1.1.0+1.0", "2.0.0+2.1"];
    let (app, repos) = spawn_app(&[("alpha", &tags), ("beta", &tags)], &[], &drone_url).await;
    for (name, r) in ["alpha", "beta"].iter().zip(&repos) {
        let url = r.upstream.display().to_string();
        for tag in tags {
            let sha = peeled(&r.upstream, tag);
            for (event, body) in [
                ("push", push_tag(&url, name, tag, &sha)),
                ("release", release(&url, name, tag)),
                ("create", create_tag(&url, name, tag, &sha)),
            ] {
                let (s, v) = deliver(&app.client, &app.base, event, &body).await;
                assert_eq!(s, 202, "{v}");
            }
        }
    }
    let done = eventually(30, || async {
        let jobs = get_json(&app, "/api/jobs").await;
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "done")
    })
    .await;
    let jobs = get_json(&app, "/api/jobs").await;
    assert!(done, "{jobs:#}");
    assert_eq!(jobs.as_array().unwrap().len(), 6);
    for (name, r) in ["alpha", "beta"].iter().zip(&repos) {
        for tag in tags {
            assert_eq!(drone.count(name, tag), 1, "{name} {tag}");
            // The mirror holds the tag at upstream's commit.
            assert_eq!(peeled(&r.mirror, tag), peeled(&r.upstream, tag));
        }
    }
    // The + of every tag travelled as %2B.
    for create in drone.creates() {
        let q = &create.query;
        assert!(
            q.contains("CANON_TAG=") && q.contains("%2B") && !q.contains('+'),
            "{q}"
        );
        assert!(q.starts_with("branch=main&CANON_RECIPE="), "{q}");
    }
    assert!(jobs
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["attempts"].as_u64().unwrap() > 1));
    let j = &jobs[0];
    assert!(
        j["build"].as_u64().is_some() && j["commit"].as_str().unwrap().len() == 40,
        "{j}"
    );
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("canon_listener_job_failures_total 5"),
        "{metrics}"
    );
    assert!(metrics.contains("canon_listener_queue_depth 0"));
    assert!(metrics.contains("canon_listener_last_event_age_seconds{recipe=\"alpha\"}"));
    let syncs: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("canon_listener_sync_seconds_count "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(syncs >= 6, "{metrics}");
    app.running.stop().await;
}

#[tokio::test]
async fn a_recipe_with_its_own_drone_repository_builds_there_and_the_others_in_the_default() {
    let drone = FakeDrone::start();
    let (app, repos) = spawn_app_enrolled(
        &[("alpha", &["1.0.0+1.0"]), ("beta", &["1.0.0+1.0"])],
        &[],
        &drone.url(),
        &[],
        |yaml| {
            let own = yaml.replace(
                "  - name: alpha\n",
                "  - name: alpha\n    drone_repo: other/repo\n",
            );
            assert_ne!(own, yaml, "alpha is enrolled: {yaml}");
            own
        },
    )
    .await;
    for (name, r) in ["alpha", "beta"].iter().zip(&repos) {
        let url = r.upstream.display().to_string();
        let sha = peeled(&r.upstream, "1.0.0+1.0");
        let (s, v) = deliver(
            &app.client,
            &app.base,
            "push",
            &push_tag(&url, name, "1.0.0+1.0", &sha),
        )
        .await;
        assert_eq!(s, 202, "{v}");
    }
    let done = eventually(30, || async {
        let jobs = get_json(&app, "/api/jobs").await;
        let jobs = jobs.as_array().unwrap();
        jobs.len() == 2 && jobs.iter().all(|j| j["state"] == "done")
    })
    .await;
    assert!(done, "{:#}", get_json(&app, "/api/jobs").await);

    // Each build was created in its recipe's repository, and only there.
    let mut created: Vec<(String, String)> = drone
        .creates()
        .iter()
        .map(|c| {
            let recipe = url::form_urlencoded::parse(c.query.as_bytes())
                .find(|(k, _)| k == "CANON_RECIPE")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            (recipe, c.path.clone())
        })
        .collect();
    created.sort();
    assert_eq!(
        created,
        [
            (
                "alpha".to_string(),
                "/api/repos/other/repo/builds".to_string()
            ),
            ("beta".to_string(), "/api/repos/canon/ci/builds".to_string()),
        ]
    );
    // The look for an earlier build (not to start one twice) asked the same repository.
    let listed: std::collections::BTreeSet<String> = drone
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        listed.into_iter().collect::<Vec<_>>(),
        ["/api/repos/canon/ci/builds", "/api/repos/other/repo/builds"]
    );
    let jobs = get_json(&app, "/api/jobs").await;
    let link = |recipe: &str| {
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["recipe"] == recipe)
            .map(|j| j["build_link"].as_str().unwrap_or_default().to_string())
            .unwrap()
    };
    assert!(
        link("alpha").starts_with("http://drone.test/other/repo/"),
        "{jobs:#}"
    );
    assert!(
        link("beta").starts_with("http://drone.test/canon/ci/"),
        "{jobs:#}"
    );
    app.running.stop().await;
}

#[tokio::test]
async fn permanent_drone_answers_fail_the_job_with_a_clear_reason() {
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    drone.answer_null(true);
    let (app, repos) = spawn_app(&[("alpha", &["1.0.0+1.0"])], &[], &drone_url).await;
    let url = repos[0].upstream.display().to_string();
    let sha = peeled(&repos[0].upstream, "1.0.0+1.0");
    deliver(
        &app.client,
        &app.base,
        "push",
        &push_tag(&url, "alpha", "1.0.0+1.0", &sha),
    )
    .await;
    let failed = eventually(20, || async {
        get_json(&app, "/api/jobs").await[0]["state"] == "failed"
    })
    .await;
    let jobs = get_json(&app, "/api/jobs").await;
    assert!(failed, "{jobs}");
    assert!(
        jobs[0]["error"]
            .as_str()
            .unwrap()
            .contains("no pipeline matched"),
        "{jobs}"
    );
    assert_eq!(jobs[0]["attempts"], 1);
    let page = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Failed jobs (1)") && page.contains("no pipeline matched"),
        "{page}"
    );
    app.running.stop().await;
}

#[tokio::test]
async fn drone_client_reports_401_404_and_501_clearly() {
    use canon_shared::drone::{BuildParams, DroneClient, DroneError};
    let drone = FakeDrone::start();
    let url = drone.url();
    let client = DroneClient::new(
        &url,
        canon_shared::secret::Secret::new("drone-token"),
        "canon/ci",
    )
    .unwrap();
    let params = BuildParams {
        recipe: canon_shared::recipe::RecipeName::parse("alpha").unwrap(),
        tag: "1.0.0+1.0".into(),
        commit: "c".repeat(40).parse().unwrap(),
    };
    assert!(client.find_build(&params).await.unwrap().is_none());
    let b = client.start_build("main", &params).await.unwrap();
    assert_eq!(b.params["CANON_TAG"], "1.0.0+1.0");
    assert_eq!(
        client.find_build(&params).await.unwrap().unwrap().number,
        b.number
    );
    for (status, want) in [
        (401, "not valid"),
        (404, "no write access"),
        (501, "does not offer"),
    ] {
        drone.force_status(Some(status));
        let e = client.start_build("main", &params).await.unwrap_err();
        assert!(e.to_string().contains(want), "{status}: {e}");
        assert!(!e.to_string().contains("drone-token"));
        assert!(!e.is_transient());
    }
    drone.force_status(None);
    drone.answer_null(true);
    assert!(matches!(
        client.start_build("main", &params).await,
        Err(DroneError::NoPipeline { .. })
    ));
    let dead = DroneClient::new(
        "http://127.0.0.1:9",
        canon_shared::secret::Secret::new("t"),
        "a/b",
    )
    .unwrap();
    assert!(dead.find_build(&params).await.unwrap_err().is_transient());
}

#[tokio::test]
async fn tags_not_newer_than_the_canonical_are_skipped_with_the_reason() {
    use canon_shared::recipe::RecipeName;
    use canon_shared::state::{CanonicalRecord, LockWait, StateDir};
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let (app, repos) = spawn_app(&[("alpha", &["1.0.0+1.0", "1.1.0+1.0"])], &[], &drone_url).await;
    let name = RecipeName::parse("alpha").unwrap();
    let state = StateDir::new(app.root.join("state"));
    let lock = state.lock(&name, LockWait::Fail).unwrap();
    state
        .write_canonical(
            &lock,
            &CanonicalRecord {
                recipe: name.clone(),
                version: "1.1.0+1.0".parse().unwrap(),
                commit: peeled(&repos[0].upstream, "1.1.0+1.0").parse().unwrap(),
                promoted_at: canon_shared::state::now(),
                build: None,
                pinned: None,
                host: None,
            },
        )
        .unwrap();
    drop(lock);
    let url = repos[0].upstream.display().to_string();
    for tag in ["1.0.0+1.0", "1.1.0+1.0"] {
        let sha = peeled(&repos[0].upstream, tag);
        deliver(
            &app.client,
            &app.base,
            "push",
            &push_tag(&url, "alpha", tag, &sha),
        )
        .await;
    }
    let skipped = eventually(20, || async {
        get_json(&app, "/api/jobs")
            .await
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "skipped")
    })
    .await;
    let jobs = get_json(&app, "/api/jobs").await;
    assert!(skipped, "{jobs}");
    let text = jobs.to_string();
    assert!(
        text.contains("older than the canonical 1.1.0+1.0")
            && text.contains("already the canonical"),
        "{text}"
    );
    assert!(drone.builds().is_empty());
    app.running.stop().await;
}

#[tokio::test]
async fn a_pinned_recipes_new_tag_is_skipped_as_pinned_and_not_built() {
    use canon_shared::recipe::RecipeName;
    use canon_shared::state::{CanonicalRecord, LockWait, StateDir};
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let (app, repos) = spawn_app(&[("alpha", &["1.0.0+1.0", "1.1.0+1.0"])], &[], &drone_url).await;
    let name = RecipeName::parse("alpha").unwrap();
    let state = StateDir::new(app.root.join("state"));
    let lock = state.lock(&name, LockWait::Fail).unwrap();
    state
        .write_canonical(
            &lock,
            &CanonicalRecord {
                recipe: name.clone(),
                version: "1.0.0+1.0".parse().unwrap(),
                commit: peeled(&repos[0].upstream, "1.0.0+1.0").parse().unwrap(),
                promoted_at: canon_shared::state::now(),
                build: None,
                pinned: None,
                host: None,
            },
        )
        .unwrap();
    drop(lock);
    canon_shared::state::pin(
        &state,
        &name,
        "database migration under review",
        "ops",
        LockWait::Fail,
    )
    .unwrap();
    let url = repos[0].upstream.display().to_string();
    let sha = peeled(&repos[0].upstream, "1.1.0+1.0");
    deliver(
        &app.client,
        &app.base,
        "push",
        &push_tag(&url, "alpha", "1.1.0+1.0", &sha),
    )
    .await;
    let skipped = eventually(20, || async {
        let jobs = get_json(&app, "/api/jobs").await;
        let jobs = jobs.as_array().unwrap();
        !jobs.is_empty() && jobs.iter().all(|j| j["state"] == "skipped")
    })
    .await;
    let jobs = get_json(&app, "/api/jobs").await;
    assert!(skipped, "{jobs}");
    let text = jobs.to_string();
    assert!(
        text.contains("pinned by ops: database migration under review"),
        "{text}"
    );
    assert!(drone.builds().is_empty(), "a pinned recipe is not built");
    app.running.stop().await;
}

#[tokio::test]
async fn a_hung_forge_fails_the_attempt_at_its_deadline_and_frees_the_worker() {
    // A forge that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://127.0.0.1:{}", silent.local_addr().unwrap().port());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let (app, repos) = spawn_app_enrolled(
        &[("alpha", &["1.0.0+1.0"])],
        &[("hung", "upstream/hung")],
        &drone_url,
        &[
            ("CANON_FORGE_URL", silent_url.as_str()),
            ("CANON_FORGE_TOKEN", "t"),
            ("CANON_ATTEMPT_DEADLINE", "1s"),
            ("CANON_WORKERS", "1"),
        ],
        // The recipe's upstream lives on the hung forge: its tags are resolved there.
        |yaml| yaml.replace("https://git.example.org", &silent_url),
    )
    .await;
    let hung_url = format!("{silent_url}/upstream/hung.git");
    let hung_url = hung_url.as_str();
    deliver(
        &app.client,
        &app.base,
        "push",
        &push_tag(hung_url, "upstream/hung", "1.0.0+1.0", &"a".repeat(40)),
    )
    .await;
    let up = &repos[0].upstream;
    let sha = peeled(up, "1.0.0+1.0");
    deliver(
        &app.client,
        &app.base,
        "push",
        &push_tag(&up.display().to_string(), "alpha", "1.0.0+1.0", &sha),
    )
    .await;
    // With one worker, the other recipe is built only because the hung attempt gave up.
    let built = eventually(30, || async { drone.builds().len() == 1 }).await;
    assert!(built, "{}", get_json(&app, "/api/jobs").await);
    let timed_out = eventually(30, || async {
        get_json(&app, "/api/jobs")
            .await
            .to_string()
            .contains("the attempt did not finish within 1s")
    })
    .await;
    assert!(timed_out, "{}", get_json(&app, "/api/jobs").await);
    app.running.stop().await;
}

/// Writes `version` as `recipe`'s canonical in the listener's state dir, pinned when `pin` is
/// given, as the plugin would after a promotion.
fn promote(app: &App, recipe: &str, version: &str, pin: Option<&str>) {
    use canon_shared::recipe::RecipeName;
    use canon_shared::state::{CanonicalRecord, LockWait};
    let state = &app.running.state.state;
    let name = RecipeName::parse(recipe).unwrap();
    {
        let lock = state.lock(&name, LockWait::Fail).unwrap();
        let record = CanonicalRecord {
            recipe: name.clone(),
            version: version.parse().unwrap(),
            commit: "c0ffee".repeat(7)[..40].parse().unwrap(),
            promoted_at: time::OffsetDateTime::now_utc(),
            build: None,
            pinned: None,
            host: None,
        };
        state.write_canonical(&lock, &record).unwrap();
    }
    if let Some(reason) = pin {
        canon_shared::state::pin(state, &name, reason, "ops", LockWait::Fail).expect("pinned");
    }
}

/// GETs the status page at `url` as the server sends it: plain HTML, no scripts, so this is the
/// document a browser builds.
async fn page_html(app: &App, url: String) -> String {
    let r = app.client.get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.unwrap()
}

/// Replaces the five XML entities the server escapes with their characters.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Returns the text the page's body shows: its markup without tags, entities decoded, every run
/// of whitespace made one space.
fn shown_text(html: &str) -> String {
    let body = &html[html.find("<body").expect("a body")..];
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    unescape(&text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// One text a badge draws: its content and, in the SVG's tenth-of-a-pixel units (the texts sit
/// in a `scale(.1)` group), its centre and length.
#[derive(Debug)]
struct Drawn {
    text: String,
    x: f64,
    length: f64,
}

/// Returns the value of the attribute `name` in the start tag `tag`.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// Returns the badge's width in pixels and the texts it draws in front, in order: every `<text>`
/// outside the `aria-hidden` shadow groups.
fn badge_drawing(svg: &str) -> (f64, Vec<Drawn>) {
    let root = &svg[..svg.find('>').expect("an svg start tag")];
    let width = attribute(root, "width")
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("the badge has a width: {svg}"));
    let mut front = svg.to_string();
    while let Some(start) = front.find("<g aria-hidden=\"true\"") {
        let end = start + front[start..].find("</g>").expect("a closed shadow group") + 4;
        front.replace_range(start..end, "");
    }
    let mut drawn = Vec::new();
    let mut rest = front.as_str();
    while let Some(start) = rest.find("<text") {
        let tag_end = start + rest[start..].find('>').expect("a text start tag");
        let close = tag_end + rest[tag_end..].find("</text>").expect("a closed text");
        let tag = &rest[start..tag_end];
        let number = |name: &str| -> f64 {
            attribute(tag, name)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} of {tag}"))
        };
        drawn.push(Drawn {
            text: unescape(&rest[tag_end + 1..close]),
            x: number("x"),
            length: number("textLength"),
        });
        rest = &rest[close..];
    }
    (width, drawn)
}

#[tokio::test]
async fn health_readiness_and_the_status_page_in_a_headless_browser() {
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    // The forge recipe's upstream is unreachable; with the default test retries its job fails for
    // good within seconds, sooner than a loaded machine renders the page. A long retry keeps it
    // pending.
    let (app, repos) = spawn_app_with(
        &[("alpha", &["1.0.0+1.0"])],
        &[("recipe", "upstream/recipe"), ("other", "upstream/other")],
        &drone_url,
        &[("CANON_RETRY_BASE", "1h"), ("CANON_RETRY_MAX", "1h")],
    )
    .await;
    // alpha: a tag built by Drone, then promoted by the plugin.
    let up = &repos[0].upstream;
    let sha = peeled(up, "1.0.0+1.0");
    deliver(
        &app.client,
        &app.base,
        "push",
        &push_tag(&up.display().to_string(), "alpha", "1.0.0+1.0", &sha),
    )
    .await;
    let built = eventually(30, || async { drone.builds().len() == 1 }).await;
    assert!(built, "{}", get_json(&app, "/api/jobs").await);
    promote(&app, "alpha", "1.0.0+1.0", None);
    // A pull-request run copies alpha's warm data while the page is drawn.
    let _copying = canon_shared::state::holds::WarmHolds::new(
        app.running.state.state.root(),
        &canon_shared::recipe::RecipeName::parse("alpha").unwrap(),
    )
    .attach(
        &canon_shared::state::holds::Holder {
            build: "12".into(),
            what: "run refs/pull/4/head".into(),
        },
        canon_shared::state::LockWait::Fail,
    )
    .unwrap();
    // recipe: a canonical, and a newer tag whose job cannot finish.
    promote(&app, "recipe", "1.0.0+0.9", None);
    let url = "https://git.example.org/upstream/recipe.git";
    deliver(
        &app.client,
        &app.base,
        "push",
        &push_tag(url, "upstream/recipe", "1.1.0+1.0", &"a".repeat(40)),
    )
    .await;
    // other: pinned.
    promote(
        &app,
        "other",
        "2.0.0+3.1",
        Some("database migration under review"),
    );
    for (path, want) in [("/healthz", "alive"), ("/readyz", "\"ready\":true")] {
        let r = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.text().await.unwrap().contains(want));
    }

    let dom = page_html(&app, format!("{}/", app.base)).await;
    let row = |recipe: &str| {
        let start = dom
            .find(&format!("<td data-label=\"Recipe\">{recipe}</td>"))
            .unwrap_or_else(|| panic!("a row for {recipe}: {dom}"));
        dom[start..start + dom[start..].find("</tr>").unwrap()].to_string()
    };
    let alpha = row("alpha");
    assert!(
        alpha.contains("<td data-label=\"Canonical\">1.0.0+1.0</td>")
            && alpha.contains("<span class=\"current\">current</span>")
            && alpha.contains("<td data-label=\"Latest tag\">1.0.0+1.0 (done)</td>")
            && alpha.contains(
                "<td data-label=\"Warm data\" class=\"long\"><span class=\"attached\">\
                 attached (build 12: run refs/pull/4/head)</span></td>"
            ),
        "{alpha}"
    );
    assert!(
        row("other").contains("<span class=\"idle\">idle</span>"),
        "{dom}"
    );
    let recipe = row("recipe");
    assert!(
        recipe.contains("<td data-label=\"Canonical\">1.0.0+0.9</td>")
            && recipe.contains("<span class=\"testing\">1.1.0+1.0 being tested</span>")
            && recipe.contains("<td data-label=\"Upstream\" class=\"long\">upstream/recipe</td>"),
        "{recipe}"
    );
    let other = row("other");
    assert!(
        other.contains("<span class=\"pinned\">pinned</span>")
            && other.contains("database migration under review (by ops,")
            && other.contains("<td data-label=\"Latest tag\">none known</td>"),
        "{other}"
    );
    // Recent jobs, newest first, with the Drone build linked.
    let recent = &dom[dom.find("<table id=\"recent\">").expect("recent jobs")..];
    let recent = &recent[..recent.find("</table>").unwrap()];
    let (newer, older) = (
        recent.find("1.1.0+1.0").expect("the pending job"),
        recent.find("1.0.0+1.0").expect("the built job"),
    );
    assert!(newer < older, "newest first: {recent}");
    assert!(
        recent.contains("<a href=\"http://drone.test/canon/ci/1\">#1</a>"),
        "{recent}"
    );
    assert!(
        dom.contains("Pending jobs (1)") && dom.contains("Failed jobs (0)"),
        "{dom}"
    );

    // What a person sees: in a wide window and in a phone-sized one, where the tables reflow
    // into cards. The page is plain HTML without scripts, so what a browser shows is its text;
    // below 40em its style makes every table a stack of cards whose cells carry their column's
    // name, so no right-hand column (the status, the build) is squeezed or cut.
    let seen = shown_text(&dom);
    for want in [
        "Latest tag",
        "current",
        "pinned",
        "Recent jobs",
        "Pending jobs (1)",
    ] {
        assert!(seen.contains(want), "the wide page shows {want:?}: {seen}");
    }
    assert!(
        dom.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"),
        "a phone draws the page at its own width: {dom}"
    );
    let style = &dom[dom.find("<style>").expect("a style")..dom.find("</style>").expect("a style")];
    let narrow = &style[style
        .find("@media (max-width:40em){")
        .expect("a narrow layout")..];
    for rule in [
        "table,tbody,tr,td{display:block;width:100%}",
        "thead{display:none}",
        "td::before{content:attr(data-label);display:block",
    ] {
        assert!(
            narrow.contains(rule),
            "the narrow layout has {rule:?}: {style}"
        );
    }
    assert_eq!(
        dom.matches("<td").count(),
        dom.matches("<td data-label=\"").count(),
        "every cell names its column in the narrow layout: {dom}"
    );
    for want in [
        "being tested",
        "database migration under review",
        "attached (build 12",
        "Recent jobs",
    ] {
        assert!(
            seen.contains(want),
            "the narrow page shows {want:?}: {seen}"
        );
    }
    for column in ["Warm data", "Outcome"] {
        assert!(
            dom.contains(&format!("<td data-label=\"{column}\"")),
            "the narrow page names the column {column:?}: {dom}"
        );
    }
    assert!(seen.contains("1.1.0+1.0"), "{seen}");
    app.running.stop().await;
}

#[tokio::test]
async fn the_status_page_lists_a_bounded_number_of_jobs_however_many_there_are() {
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let (app, _) = spawn_app_with(
        &[],
        &[("recipe", "upstream/recipe")],
        &drone_url,
        &[("CANON_RETRY_BASE", "1h"), ("CANON_RETRY_MAX", "1h")],
    )
    .await;
    let url = "https://git.example.org/upstream/recipe.git";
    for i in 0..60 {
        let (s, v) = deliver(
            &app.client,
            &app.base,
            "push",
            &push_tag(
                url,
                "upstream/recipe",
                &format!("1.{i}.0+1.0"),
                &"a".repeat(40),
            ),
        )
        .await;
        assert_eq!(s, 202, "{v}");
    }
    let page = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows = |id: &str| {
        let table = &page[page.find(&format!("<table id=\"{id}\">")).expect(id)..];
        table[..table.find("</table>").unwrap()]
            .matches("<tr")
            .count()
            - 1
    };
    assert_eq!(rows("recent"), 50, "{page}");
    assert_eq!(rows("pending"), 50, "{page}");
    assert!(
        page.contains("Pending jobs (60, newest 50 shown)"),
        "{page}"
    );
    // The newest first, and the latest tag by version, not by arrival.
    let recent = &page[page.find("<table id=\"recent\">").unwrap()..];
    assert!(
        recent.find("1.59.0+1.0").unwrap() < recent.find("1.58.0+1.0").unwrap(),
        "{recent}"
    );
    assert!(
        !recent.contains(">1.9.0+1.0<"),
        "the oldest are left out: {recent}"
    );
    assert!(page.contains("1.59.0+1.0 being tested"), "{page}");
    app.running.stop().await;
}

#[tokio::test]
async fn the_status_page_says_who_holds_each_recipes_warm_data() {
    use canon_shared::recipe::RecipeName;
    use canon_shared::state::holds::{Holder, WarmHolds};
    use canon_shared::state::LockWait;
    let drone = FakeDrone::start();
    let (app, _) = spawn_app(
        &[],
        &[
            ("copied", "upstream/copied"),
            ("replaced", "upstream/replaced"),
            ("quiet", "upstream/quiet"),
        ],
        &drone.url(),
    )
    .await;
    promote(&app, "copied", "1.0.0+1.0", None);
    let root = app.running.state.state.root().to_path_buf();
    let holds = |recipe: &str| WarmHolds::new(&root, &RecipeName::parse(recipe).unwrap());
    let who = |build: &str, what: &str| Holder {
        build: build.into(),
        what: what.into(),
    };
    // Two runs copy one recipe's warm data while another's first promote replaces its own.
    let runs = [
        holds("copied")
            .attach(&who("12", "run refs/pull/4/head"), LockWait::Fail)
            .unwrap(),
        holds("copied")
            .attach(&who("13", "run refs/pull/5/head"), LockWait::Fail)
            .unwrap(),
    ];
    let promoting = holds("replaced")
        .promote(&who("7", "promote 2.0.0+1.0"), LockWait::Fail)
        .unwrap();
    let page = || async {
        app.client
            .get(format!("{}/", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let warm_of = |page: &str, recipe: &str| {
        let start = page
            .find(&format!("<td data-label=\"Recipe\">{recipe}</td>"))
            .unwrap_or_else(|| panic!("a row for {recipe}: {page}"));
        let row = &page[start..start + page[start..].find("</tr>").unwrap()];
        let cell = "<td data-label=\"Warm data\" class=\"long\">";
        let at = row
            .find(cell)
            .unwrap_or_else(|| panic!("a warm data cell: {row}"));
        row[at + cell.len()..at + row[at..].find("</td>").unwrap()].to_string()
    };
    let held = page().await;
    assert_eq!(
        warm_of(&held, "copied"),
        "<span class=\"attached\">attached (build 12: run refs/pull/4/head; \
         build 13: run refs/pull/5/head)</span>"
    );
    assert_eq!(
        warm_of(&held, "replaced"),
        "<span class=\"promoting\">promoting (build 7: promote 2.0.0+1.0)</span>"
    );
    assert_eq!(warm_of(&held, "quiet"), "<span class=\"idle\">idle</span>");
    assert!(
        held.contains("<th>Warm data</th>") && !held.contains("<script"),
        "{held}"
    );

    // Released: idle again at the next look, nothing cached.
    drop(runs);
    drop(promoting);
    let released = page().await;
    for recipe in ["copied", "replaced", "quiet"] {
        assert_eq!(
            warm_of(&released, recipe),
            "<span class=\"idle\">idle</span>",
            "{recipe}"
        );
    }
    app.running.stop().await;
}

#[tokio::test]
async fn the_badge_is_public_cached_by_etag_and_follows_the_canonical() {
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let token = "admin-token-0123456789";
    let (app, _) = spawn_app_with(
        &[],
        &[("recipe", "upstream/recipe"), ("other", "upstream/other")],
        &drone_url,
        &[
            ("CANON_ADMIN_TOKEN", token),
            ("CANON_RETRY_BASE", "1h"),
            ("CANON_RETRY_MAX", "1h"),
        ],
    )
    .await;
    let get = |path: &str, if_none_match: Option<&str>| {
        let mut r = app.client.get(format!("{}{path}", app.base));
        if let Some(tag) = if_none_match {
            r = r.header("if-none-match", tag);
        }
        async move {
            let r = r.send().await.unwrap();
            let header = |name: &str| {
                r.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default()
            };
            let (ct, cc, etag) = (
                header("content-type"),
                header("cache-control"),
                header("etag"),
            );
            (r.status().as_u16(), ct, cc, etag, r.text().await.unwrap())
        }
    };
    // The status page stays behind the token; the badge does not.
    assert_eq!(get("/", None).await.0, 401);

    let (status, ct, cc, first, body) = get("/badge/recipe.svg", None).await;
    assert_eq!(
        (status, ct.as_str(), cc.as_str()),
        (200, "image/svg+xml", "max-age=60")
    );
    assert!(
        body.contains(">none yet</text>") && body.contains("#9f9f9f"),
        "{body}"
    );

    promote(&app, "recipe", "1.13.0+1.31.1", None);
    let (status, _, _, current, body) = get("/badge/recipe.svg", Some(&first)).await;
    assert_eq!(status, 200, "a new canonical is a new badge");
    assert_ne!(current, first);
    assert!(
        body.contains(">1.13.0+1.31.1</text>") && body.contains("fill=\"#4c1\""),
        "current is green: {body}"
    );
    assert!(
        current.starts_with('"') && !current.starts_with("W/"),
        "strong: {current}"
    );
    let (status, _, cc, etag, body) = get("/badge/recipe.svg", Some(&current)).await;
    assert_eq!((status, body.as_str()), (304, ""), "unchanged");
    assert_eq!(
        (etag.as_str(), cc.as_str()),
        (current.as_str(), "max-age=60")
    );

    // A newer tag arrives: journaled, so being tested, at once.
    let (s, v) = deliver(
        &app.client,
        &app.base,
        "push",
        &push_tag(
            "https://git.example.org/upstream/recipe.git",
            "upstream/recipe",
            "1.14.0+1.32.0",
            &"a".repeat(40),
        ),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let (status, _, _, testing, body) = get("/badge/recipe.svg", Some(&current)).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(">1.13.0+1.31.1</text>") && body.contains("fill=\"#fe7d37\""),
        "a newer tag under test is orange: {body}"
    );
    assert_ne!(testing, current);

    promote(&app, "other", "2.0.0+3.1", Some("review"));
    let (_, _, _, _, body) = get("/badge/other.svg", None).await;
    assert!(
        body.contains(">2.0.0+3.1</text>") && body.contains("fill=\"#9f9f9f\""),
        "pinned is grey: {body}"
    );

    let (status, ct, _, _, body) = get("/badge/nope.svg", None).await;
    assert_eq!((status, ct.as_str()), (404, "image/svg+xml"), "{body}");
    assert!(body.contains(">unknown recipe</text>"), "{body}");
    for path in ["/badge/Bad.svg", "/badge/a%2F..%2Fb.svg", "/badge/..svg"] {
        let (status, _, _, _, body) = get(path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("invalid recipe name"), "{path}: {body}");
    }
    assert_eq!(get("/badge/recipe", None).await.0, 404);
    assert_eq!(get("/badge/recipe.png", None).await.0, 404);

    // What a README shows: the badge an `<img>` draws. It is a standalone SVG of a fixed size
    // whose front texts (not their shadows) are the label and the version, each inside the
    // badge and the label left of the version; screen readers get the same words.
    let (_, _, _, _, svg) = get("/badge/recipe.svg", None).await;
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.ends_with("</svg>"),
        "{svg}"
    );
    assert!(
        svg.contains("aria-label=\"canonical: 1.13.0+1.31.1\"")
            && svg.contains("<title>canonical: 1.13.0+1.31.1</title>"),
        "{svg}"
    );
    let (width, drawn) = badge_drawing(&svg);
    let texts: Vec<&str> = drawn.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts, ["canonical", "1.13.0+1.31.1"], "{svg}");
    for d in &drawn {
        assert!(
            d.length > 0.0 && d.x - d.length / 2.0 >= 0.0 && d.x + d.length / 2.0 <= width * 10.0,
            "{d:?} lies inside the badge's {width} px: {svg}"
        );
    }
    assert!(
        drawn[0].x + drawn[0].length / 2.0 <= drawn[1].x - drawn[1].length / 2.0,
        "the label is left of the version: {drawn:?}"
    );
    app.running.stop().await;
}

/// GETs `path` and returns the status and the body as JSON (`Null` when not JSON).
async fn get_status_json(app: &App, path: &str) -> (u16, serde_json::Value) {
    let r = app
        .client
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn the_job_for_a_tag_answers_over_http_and_the_shared_client_reads_it() {
    use canon_shared::forge::ForgeKind;
    use canon_shared::listener_api::{self, JobState, ListenerApiError, ListenerClient};
    use canon_shared::recipe::RecipeName;

    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let (app, repos) = spawn_app(
        &[("alpha", &["1.0.0+1.0"])],
        &[("remote", "upstream/remote")],
        &drone_url,
    )
    .await;
    let up = &repos[0].upstream;
    let sha = peeled(up, "1.0.0+1.0");
    let (s, v) = deliver(
        &app.client,
        &app.base,
        "push",
        &push_tag(&up.display().to_string(), "alpha", "1.0.0+1.0", &sha),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    // A job that can never finish (its upstream is not reachable) still counts: any state does.
    let (s, v) = deliver(
        &app.client,
        &app.base,
        "release",
        &release(
            "https://git.example.org/upstream/remote.git",
            "upstream/remote",
            "2.0.0+2.0",
        ),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let done = eventually(30, || async {
        get_json(&app, "/api/jobs")
            .await
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["recipe"] == "alpha" && j["state"] == "done")
    })
    .await;
    assert!(done, "{:#}", get_json(&app, "/api/jobs").await);

    // Over HTTP: the tag's `+` may travel raw or as %2B; the answer is the summary only.
    for path in [
        "/api/recipes/alpha/tags/1.0.0+1.0/job",
        "/api/recipes/alpha/tags/1.0.0%2B1.0/job",
    ] {
        let (status, body) = get_status_json(&app, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let job = &body["job"];
        let mut keys: Vec<&str> = job
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "attempts",
                "build",
                "commit",
                "created_at",
                "forge",
                "id",
                "recipe",
                "repo",
                "state",
                "tag",
                "updated_at"
            ],
            "no error text or link: {job}"
        );
        assert_eq!(
            (&job["recipe"], &job["tag"], &job["state"], &job["forge"]),
            (
                &serde_json::json!("alpha"),
                &serde_json::json!("1.0.0+1.0"),
                &serde_json::json!("done"),
                &serde_json::json!("gitea")
            ),
            "{job}"
        );
    }
    for path in [
        "/api/recipes/alpha/tags/9.9.9+9.9/job",
        "/api/recipes/beta/tags/1.0.0+1.0/job",
    ] {
        assert_eq!(
            get_status_json(&app, path).await,
            (404, serde_json::json!({ "job": null })),
            "{path}"
        );
    }
    let (status, body) = get_status_json(&app, "/api/recipes/Not..A..Name/tags/1/job").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("invalid recipe name"));

    // The shared client against the real listener: the contract test.
    let base = url::Url::parse(&app.base).unwrap();
    let alpha = RecipeName::parse("alpha").unwrap();
    let job = listener_api::job_for(&base, &alpha, "1.0.0+1.0")
        .await
        .expect("the listener answers")
        .expect("a job");
    assert_eq!(job.recipe, alpha);
    assert_eq!(job.tag, "1.0.0+1.0");
    assert_eq!(job.forge, ForgeKind::Gitea);
    assert_eq!(job.repo, "alpha");
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.commit.as_deref(), Some(sha.as_str()));
    assert_eq!(job.build, Some(1));
    assert_eq!(drone.count("alpha", "1.0.0+1.0"), 1);
    assert!(job.attempts >= 1 && !job.created_at.is_empty() && !job.updated_at.is_empty());
    let listed = get_json(&app, "/api/jobs").await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == job.id && j["recipe"] == "alpha"),
        "{listed}"
    );

    // Credentials in the base travel as basic auth, which the listener ignores.
    let client = ListenerClient::new(
        url::Url::parse(&app.base.replace("http://", "http://op:pw-s3cret@")).unwrap(),
    )
    .unwrap();
    let remote = client
        .job_for(&RecipeName::parse("remote").unwrap(), "2.0.0+2.0")
        .await
        .expect("the listener answers")
        .expect("a job in whatever state it is");
    assert_eq!(
        (remote.forge, remote.repo.as_str()),
        (ForgeKind::Gitea, "upstream/remote")
    );
    assert_eq!(remote.build, None);
    assert_eq!(
        client.job_for(&alpha, "9.9.9+9.9").await.unwrap(),
        None,
        "no job is an answer, not an error"
    );

    // A path the listener does not route (its answer is a 404 without a job) is an error, never
    // "no job".
    let elsewhere = url::Url::parse(&format!("{}/not-the-listener/", app.base)).unwrap();
    let e = listener_api::job_for(&elsewhere, &alpha, "1.0.0+1.0")
        .await
        .unwrap_err();
    assert!(matches!(e, ListenerApiError::NoRoute { .. }), "{e}");
    // Errors show the URL without its credentials.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let closed = url::Url::parse(&format!("http://op:pw-s3cret@127.0.0.1:{port}/")).unwrap();
    let e = listener_api::job_for(&closed, &alpha, "1.0.0+1.0")
        .await
        .unwrap_err();
    assert!(matches!(e, ListenerApiError::Transport { .. }), "{e}");
    let shown = format!("{e} {:?}", std::error::Error::source(&e));
    assert!(
        shown.contains(&format!("127.0.0.1:{port}/api/recipes/alpha/tags/")),
        "{shown}"
    );
    assert!(
        !shown.contains("s3cret") && !shown.contains("op:"),
        "{shown}"
    );
    app.running.stop().await;
}

/// GETs `path` with `token` as a bearer (none when `None`); returns the status, the
/// `X-Next-Cursor` header and the body text.
async fn get_with(app: &App, path: &str, token: Option<&str>) -> (u16, Option<String>, String) {
    let mut req = app.client.get(format!("{}{path}", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let cursor = r
        .headers()
        .get("x-next-cursor")
        .map(|v| v.to_str().unwrap().to_string());
    if let Some(c) = &cursor {
        let link = r
            .headers()
            .get("link")
            .expect("a Link header")
            .to_str()
            .unwrap();
        let path = path.split('?').next().unwrap();
        assert!(
            link.starts_with(&format!("<{path}?")) && link.contains(&format!("before={c}>")),
            "{link}"
        );
        assert!(link.ends_with("rel=\"next\""), "{link}");
    }
    (status, cursor, r.text().await.unwrap())
}

#[tokio::test]
async fn reads_are_paginated_and_need_the_admin_token_when_one_is_set() {
    use canon_shared::listener_api::{ListenerApiError, ListenerClient};
    use canon_shared::recipe::RecipeName;
    use canon_shared::secret::Secret;

    const TOKEN: &str = "admin-token-0123456789";
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    // Tags the upstream does not have: every attempt fails and waits an hour, so the jobs stay.
    let (app, repos) = spawn_app_with(
        &[("alpha", &[]), ("beta", &[])],
        &[],
        &drone_url,
        &[
            ("CANON_ADMIN_TOKEN", TOKEN),
            ("CANON_RETRY_BASE", "1h"),
            ("CANON_RETRY_MAX", "1h"),
        ],
    )
    .await;
    let mut sent = 0;
    for (n, r) in ["alpha", "beta"].iter().zip(&repos) {
        for i in 0..6 {
            let url = r.upstream.display().to_string();
            let body = push_tag(&url, n, &format!("1.{i}.0+1"), &"a".repeat(40));
            // Hooks stay open: a forge carries no token.
            let (s, v) = deliver(&app.client, &app.base, "push", &body).await;
            assert_eq!(s, 202, "{v}");
            sent += 1;
        }
    }

    // Open: the probes. Protected: the page, the API and metrics; a 401 says nothing more.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get_with(&app, path, None).await.0, 200, "{path}");
    }
    let protected = [
        "/",
        "/api/jobs",
        "/api/deliveries",
        "/api/recipes/alpha/tags/1.0.0+1/job",
        "/metrics",
    ];
    for path in protected {
        for token in [None, Some("wrong-token-0123456789"), Some("admin-token")] {
            let (status, _, body) = get_with(&app, path, token).await;
            assert_eq!((status, body.as_str()), (401, ""), "{path} with {token:?}");
        }
        assert_eq!(get_with(&app, path, Some(TOKEN)).await.0, 200, "{path}");
    }
    let unknown = get_with(&app, "/nowhere", None).await.0;
    // As without a token: an unrouted GET is a 404, never a 401.
    assert_eq!(unknown, 404, "an unknown path is answered as before");

    // The shared client carries the token.
    let base = url::Url::parse(&app.base).unwrap();
    let alpha = RecipeName::parse("alpha").unwrap();
    match ListenerClient::new(base.clone())
        .unwrap()
        .job_for(&alpha, "1.0.0+1")
        .await
    {
        Err(ListenerApiError::Status { status: 401, .. }) => {}
        other => panic!("without the token: {other:?}"),
    }
    let job = ListenerClient::new(base)
        .unwrap()
        .with_token(Secret::new(TOKEN))
        .job_for(&alpha, "1.0.0+1")
        .await
        .expect("the listener answers")
        .expect("a job");
    assert_eq!(job.tag, "1.0.0+1");

    // Limits: a bad one is a 400 that says why; the default holds everything here.
    for bad in ["0", "501", "many", "-1"] {
        let (status, _, body) =
            get_with(&app, &format!("/api/jobs?limit={bad}"), Some(TOKEN)).await;
        assert_eq!(status, 400, "limit={bad}: {body}");
        assert!(
            body.contains("limit must be a whole number from 1 to 500"),
            "{body}"
        );
    }
    let (status, _, body) = get_with(&app, "/api/deliveries?before=x", Some(TOKEN)).await;
    assert_eq!(status, 400, "{body}");
    let (_, cursor, body) = get_with(&app, "/api/jobs?limit=500", Some(TOKEN)).await;
    assert_eq!(cursor, None);
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(all.len(), sent);

    // Walking with the cursor sees every row once, newest first, and the body stays an array.
    for list in ["/api/jobs", "/api/deliveries"] {
        let mut seen: Vec<serde_json::Value> = Vec::new();
        let mut path = format!("{list}?limit=5");
        loop {
            let (status, cursor, body) = get_with(&app, &path, Some(TOKEN)).await;
            assert_eq!(status, 200, "{path}: {body}");
            let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
            assert!(rows.len() <= 5, "{path}");
            seen.extend(rows);
            match cursor {
                Some(c) => path = format!("{list}?limit=5&before={c}"),
                None => break,
            }
        }
        let key = if list == "/api/jobs" {
            "id"
        } else {
            "delivery"
        };
        let keys: Vec<String> = seen.iter().map(|r| r[key].to_string()).collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((keys.len(), unique.len()), (sent, sent), "{list}: {keys:?}");
        if list == "/api/jobs" {
            let ids: Vec<i64> = seen.iter().map(|r| r["id"].as_i64().unwrap()).collect();
            assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
        }
    }
    app.running.stop().await;
}
