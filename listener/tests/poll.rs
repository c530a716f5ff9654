//! Polling upstreams without webhooks, end to end: a new release tag of a local upstream is
//! found by the listener's own poll loop and built once through the usual job path (a webhook
//! for the same tag folds into that job), a listing over smart HTTP costs one authorized request
//! per recipe and carries the host's token, a recipe webhooks feed is not polled, and the status
//! page says per recipe how tags arrive.

use crate::support;

use std::time::Duration;

use canon_listener::app;
use canon_listener::poll::{self, PollOutcome};
use canon_shared::mirror::Credentials;
use canon_shared::secret::Secret;
use canon_testkit::drone::FakeDrone;
use canon_testkit::git::{bare, git, peeled, GitHttpServer};
use support::*;

struct App {
    base: String,
    running: app::Running,
    client: reqwest::Client,
    repos: Vec<Repos>,
    _tmp: tempfile::TempDir,
}

async fn spawn(local: &[(&str, &[&str])], drone: &str, extra: &[(&str, &str)]) -> App {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let repos: Vec<Repos> = local.iter().map(|(n, t)| repos(&root, n, t)).collect();
    let pairs: Vec<(&str, &Repos)> = local
        .iter()
        .zip(&repos)
        .map(|((n, _), r)| (*n, r))
        .collect();
    let enrollment = enrollment(&root, &pairs, &[]);
    let mut vars = env(&root.join("state"), &enrollment, drone);
    for (k, v) in extra {
        vars.retain(|(key, _)| key != k);
        vars.push((k.to_string(), v.to_string()));
    }
    let running = app::start(&settings(vars), Duration::from_secs(5))
        .await
        .expect("the listener starts");
    App {
        base: format!("http://{}", running.addr),
        running,
        client: reqwest::Client::new(),
        repos,
        _tmp: tmp,
    }
}

async fn deliveries(app: &App) -> Vec<serde_json::Value> {
    app.client
        .get(format!("{}/api/deliveries", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn page(app: &App) -> String {
    app.client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Returns the status page's row of `recipe`.
fn row<'a>(page: &'a str, recipe: &str) -> &'a str {
    let start = page
        .find(&format!("<td data-label=\"Recipe\">{recipe}</td>"))
        .unwrap_or_else(|| panic!("no row for {recipe}"));
    let end = page[start..]
        .find("</tr>")
        .map_or(page.len(), |e| start + e);
    &page[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_release_tag_is_found_by_polling_and_built_once_even_when_its_webhook_follows() {
    let drone = FakeDrone::start();
    let app = spawn(
        &[("alpha", &[])],
        &drone.url(),
        &[("CANON_POLL_INTERVAL", "150ms")],
    )
    .await;
    // No release tag yet: polls find nothing.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(deliveries(&app).await.is_empty());
    let up = &app.repos[0].upstream;
    git(up, &["tag", "1.0.0+1.0"]);
    let sha = peeled(up, "1.0.0+1.0");
    let built = eventually(20, || async { drone.count("alpha", "1.0.0+1.0") == 1 }).await;
    assert!(built, "the polled tag was built");
    let rows = deliveries(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["event"], "poll");
    assert_eq!(rows[0]["tag"], "1.0.0+1.0");
    assert_eq!(rows[0]["outcome"], "accepted");
    // The webhook that arrives late lands on the polled job.
    let url = up.display().to_string();
    let (status, body) = deliver(
        &app.client,
        &app.base,
        "push",
        &push_tag(&url, "alpha", "1.0.0+1.0", &sha),
    )
    .await;
    assert!(status < 300, "{status} {body}");
    assert_eq!(body["outcome"], "duplicate", "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(drone.count("alpha", "1.0.0+1.0"), 1);
    let jobs: Vec<serde_json::Value> = app
        .client
        .get(format!("{}/api/jobs", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    // Later polls do not journal the tag again.
    assert_eq!(
        deliveries(&app)
            .await
            .iter()
            .filter(|d| d["event"] == "poll")
            .count(),
        1
    );
    app.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_over_smart_http_is_one_request_per_recipe_with_the_host_s_token() {
    let drone = FakeDrone::start();
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let names = ["one", "two", "three"];
    let server = GitHttpServer::start(&served, None, "upstream-token-0123");
    let mut yaml = String::from("recipes:\n");
    for name in names {
        let work = tmp.path().join(name);
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(work.join("compose.yml"), "# x\n").unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "first"]);
        git(&work, &["tag", "not-a-release"]);
        let bare_path = served.join(format!("{name}.git"));
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                "--bare",
                work.to_str().unwrap(),
                bare_path.to_str().unwrap(),
            ],
        );
        let mirror = tmp.path().join(format!("{name}-mirror.git"));
        bare(&mirror);
        yaml.push_str(&format!(
            "  - name: {name}\n    upstream: {}\n    mirror: {}\n",
            server.url(&format!("{name}.git")),
            mirror.display()
        ));
    }
    let enrollment = tmp.path().join("enrollment.yml");
    std::fs::write(&enrollment, yaml).unwrap();
    let mut vars = env(&tmp.path().join("state"), &enrollment, &drone.url());
    vars.push(("CANON_POLL_INTERVAL".into(), "0".into()));
    let running = app::start(&settings(vars), Duration::from_secs(5))
        .await
        .unwrap();
    server.take_log();
    // The upstream token goes to its own host only; this one is the server's.
    let credentials = Credentials {
        upstream_token: Some(Secret::new("upstream-token-0123")),
        upstream_base: Some(server.url("")),
        ..Credentials::default()
    };
    let outcomes = poll::poll_once(&running.state, &credentials).await;
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|(_, o)| *o == PollOutcome::NothingNew),
        "{outcomes:?}"
    );
    let log = server.take_log();
    assert_eq!(log.len(), 3, "one authorized listing per recipe: {log:?}");
    for line in &log {
        assert!(
            line.starts_with("GET /") && line.ends_with("/info/refs?service=git-upload-pack"),
            "{line}"
        );
    }
    // A wrong token is a failed poll that says so without the token.
    let wrong = Credentials {
        upstream_token: Some(Secret::new("wrong-token-s3cr3t")),
        upstream_base: Some(server.url("")),
        ..Credentials::default()
    };
    let outcomes = poll::poll_once(&running.state, &wrong).await;
    for (_, o) in &outcomes {
        match o {
            PollOutcome::Failed(e) => assert!(!e.contains("s3cr3t"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(running.state.journal.delivery_count().await.unwrap(), 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipe_fed_by_webhooks_is_not_polled_and_the_status_page_says_how_tags_arrive() {
    let drone = FakeDrone::start();
    let app = spawn(
        &[("alpha", &["1.0.0+1.0"]), ("beta", &[])],
        &drone.url(),
        &[("CANON_POLL_INTERVAL", "1h")],
    )
    .await;
    let up = &app.repos[0].upstream;
    let sha = peeled(up, "1.0.0+1.0");
    let (status, _) = deliver(
        &app.client,
        &app.base,
        "push",
        &push_tag(&up.display().to_string(), "alpha", "1.0.0+1.0", &sha),
    )
    .await;
    assert_eq!(status, 202);
    let page = page(&app).await;
    assert!(page.contains("<th>Tags by</th>"), "{page}");
    assert!(
        row(&page, "alpha").contains("<td data-label=\"Tags by\">webhook</td>"),
        "{}",
        row(&page, "alpha")
    );
    assert!(
        row(&page, "beta").contains("<td data-label=\"Tags by\">polling</td>"),
        "{}",
        row(&page, "beta")
    );
    // Only beta is polled; a new tag there is journaled, alpha's new tag waits for its webhook.
    git(up, &["tag", "1.1.0+1.0"]);
    git(&app.repos[1].upstream, &["tag", "2.0.0+1.0"]);
    let outcomes = poll::poll_once(&app.running.state, &Credentials::default()).await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].0.as_str(), "beta");
    assert!(
        matches!(&outcomes[0].1, PollOutcome::Journaled(v, Some(_)) if v.to_string() == "2.0.0+1.0"),
        "{outcomes:?}"
    );
    app.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_polling_off_the_status_page_says_only_the_sweep_finds_tags() {
    let drone = FakeDrone::start();
    let app = spawn(
        &[("alpha", &[])],
        &drone.url(),
        &[("CANON_POLL_INTERVAL", "0")],
    )
    .await;
    let page = page(&app).await;
    assert!(
        row(&page, "alpha").contains("weekly sweep only (polling off)"),
        "{}",
        row(&page, "alpha")
    );
    app.running.stop().await;
}
