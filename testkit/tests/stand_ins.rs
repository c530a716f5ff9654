//! The kit's own promises, checked over real HTTP and real git: the Drone stand-in's decoding,
//! paging and failure injection, the smart-HTTP server's basic auth, a released upstream's refs,
//! and a deadline that kills an overrunning child. The crates' tests rely on all of these.

use std::process::Command;
use std::time::Duration;

use canon_testkit::drone::{FakeDrone, TOKEN};
use canon_testkit::git::{
    bare, git, git_cmd, peeled, refs_under, synced_refs, GitHttpServer, Work, ANNOTATED_RELEASE,
    LIGHTWEIGHT_RELEASE,
};
use canon_testkit::process::output_within;
use serde_json::Value;

fn client() -> reqwest::Client {
    // reqwest is built without a crypto provider of its own (canon's crates install ring; the
    // kit depends on none of them).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn call(method: reqwest::Method, url: String, token: &str) -> (u16, Value) {
    let r = client()
        .request(method, url)
        .bearer_auth(token)
        .send()
        .await
        .expect("the stand-in answers");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_drone_stand_in_decodes_a_query_like_drone_and_lists_newest_first() {
    let drone = FakeDrone::start();
    let builds = format!("{}/api/repos/canon/ci/builds", drone.url());
    for tag in ["1.0.0%2B1", "2.0.0+1"] {
        let url = format!("{builds}?branch=main&CANON_RECIPE=app&CANON_TAG={tag}");
        let (status, build) = call(reqwest::Method::POST, url, TOKEN).await;
        assert_eq!(status, 200, "{build}");
        assert_eq!(build["status"], "pending");
        assert!(build["params"].get("branch").is_none(), "{build}");
    }
    assert_eq!(drone.count("app", "1.0.0+1"), 1, "%2B is a plus");
    assert_eq!(drone.count("app", "2.0.0 1"), 1, "a bare + is a space");
    assert_eq!(drone.creates().len(), 2);

    let (_, page) = call(
        reqwest::Method::GET,
        format!("{builds}?page=1&per_page=1"),
        TOKEN,
    )
    .await;
    assert_eq!(page[0]["number"], 2, "newest first: {page}");
    let (_, page) = call(
        reqwest::Method::GET,
        format!("{builds}?page=3&per_page=1"),
        TOKEN,
    )
    .await;
    assert_eq!(page, serde_json::json!([]));
}

#[tokio::test]
async fn the_drone_stand_in_refuses_a_wrong_token_and_injects_failures() {
    let drone = FakeDrone::start();
    let create = format!("{}/api/repos/canon/ci/builds?branch=main", drone.url());
    let post = |token: &'static str| call(reqwest::Method::POST, create.clone(), token);

    assert_eq!(post("wrong").await.0, 401);
    drone.fail_next_creates(1);
    assert_eq!(post(TOKEN).await.0, 500);
    drone.force_status(Some(404));
    assert_eq!(post(TOKEN).await.0, 404);
    drone.force_status(None);
    drone.answer_null(true);
    assert_eq!(post(TOKEN).await, (200, Value::Null));
    drone.answer_null(false);
    assert_eq!(post(TOKEN).await.0, 200);

    assert_eq!(drone.builds().len(), 1, "only the last create made a build");
    assert_eq!(drone.creates().len(), 5, "every create is recorded");
}

#[test]
fn a_released_upstream_clones_over_smart_http_only_with_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("served/upstream.git");
    let work = Work::released(&tmp.path().join("work"), &up);
    assert_eq!(
        refs_under(&up, "refs/tags/")
            .into_iter()
            .map(|(r, _)| r)
            .collect::<Vec<_>>(),
        [
            format!("refs/tags/{LIGHTWEIGHT_RELEASE}"),
            format!("refs/tags/{ANNOTATED_RELEASE}")
        ]
    );
    assert_eq!(peeled(&up, ANNOTATED_RELEASE), work.head());

    let server = GitHttpServer::start(&tmp.path().join("served"), Some("canon"), "s3cret");
    let url = server.url("upstream.git");
    let with = |credentials: &str| url.replacen("http://", &format!("http://{credentials}@"), 1);
    let mirror = tmp.path().join("mirror.git");
    bare(&mirror);
    git(
        &mirror,
        &["fetch", "-q", &with("canon:s3cret"), "+refs/*:refs/*"],
    );
    assert_eq!(synced_refs(&mirror, "main"), synced_refs(&up, "main"));
    assert!(server
        .take_log()
        .iter()
        .any(|l| l.starts_with("GET /upstream.git/info/refs")));

    for wrong in ["canon:wrong", "other:s3cret"] {
        let out = output_within(
            &mut git_cmd(tmp.path(), &["ls-remote", &with(wrong)]),
            Duration::from_secs(30),
        );
        assert!(!out.status.success(), "{wrong} is refused");
    }
    assert!(
        server.take_log().is_empty(),
        "refused requests are not logged"
    );
}

#[test]
#[should_panic(expected = "did not finish within")]
fn a_child_that_overruns_its_deadline_fails_the_test() {
    output_within(Command::new("sleep").arg("5"), Duration::from_millis(100));
}
