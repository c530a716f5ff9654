//! The real binary, on what it must never show or lose: a credential a server quotes in its
//! error never reaches the journal, the API, the status page or the log.

mod support;

use std::time::Duration;

use canon_testkit::drone::FakeDrone;
use canon_testkit::git::peeled;
use canon_testkit::loopback::free_port;
use support::*;

/// Sets `key` in `env`, replacing any value it had.
fn set(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_with_credentials_in_a_job_error_is_shown_nowhere_with_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let drone = FakeDrone::start();
    drone.fail_next_creates_saying(
        10,
        "cannot clone https://bob:hunter2@internal.example/o/r.git: 403",
    );
    let app = repos(root, "app", &["1.0.0+1"]);
    let enrollment = enrollment(root, &[("app", &app)], &[]);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut env = env(&root.join("state"), &enrollment, &drone.url());
    set(&mut env, "CANON_BIND", &format!("127.0.0.1:{port}"));
    set(&mut env, "CANON_MAX_ATTEMPTS", "2");
    let log = root.join("listener.log");
    let _listener = spawn_listener(&env, &log);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_healthy(&client, &base).await;

    let url = app.upstream.display().to_string();
    let sha = peeled(&app.upstream, "1.0.0+1");
    let (status, _) = deliver(
        &client,
        &base,
        "push",
        &push_tag(&url, "app", "1.0.0+1", &sha),
    )
    .await;
    assert_eq!(status, 202);
    let get = |path: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let failed = eventually(30, || async {
        get("/api/jobs").await.contains("\"state\":\"failed\"")
    })
    .await;
    let jobs = get("/api/jobs").await;
    assert!(failed, "{jobs}");
    let masked = "https://***@internal.example/o/r.git";
    assert!(jobs.contains(masked), "{jobs}");
    let page = get("/").await;
    assert!(page.contains("https://***@internal.example"), "{page}");
    // The log line is written when the attempt ends, just before the job is stored.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains(masked), "{logged}");
    for (what, text) in [
        ("/api/jobs", jobs),
        ("/", page),
        ("/api/deliveries", get("/api/deliveries").await),
        ("the log", logged),
    ] {
        assert!(
            !text.contains("hunter2") && !text.contains("bob:"),
            "{what} shows the credential: {text}"
        );
    }
}
