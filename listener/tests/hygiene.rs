//! The real binary, on what it must never show or lose: a credential a server quotes in its
//! error never reaches the journal, the API, the status page or the log.

use crate::support;

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
    let client = canon_shared::http_client::builder()
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

/// A small tmpfs, unmounted (lazily) on drop.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs, which needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            path: path.to_path_buf(),
        }
    }

    /// Writes `filler` until the disk is full, in ever smaller pieces.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let mut piece = 1 << 20;
        while piece >= 512 {
            let chunk = vec![0u8; piece];
            while file
                .write_all(&chunk)
                .and_then(|()| file.sync_all())
                .is_ok()
            {}
            piece /= 2;
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// Returns the delivery ids the journal holds, read through `/api/deliveries`.
async fn journaled(client: &reqwest::Client, base: &str) -> std::collections::BTreeSet<String> {
    let rows: serde_json::Value = client
        .get(format!("{base}/api/deliveries?limit=500"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] != "rejected")
        .filter_map(|r| r["delivery"].as_str().map(String::from))
        .collect()
}

/// Posts a signed push of `tag` with delivery id `id`; returns the status.
async fn push(client: &reqwest::Client, base: &str, app: &Repos, tag: &str, id: &str) -> u16 {
    let url = app.upstream.display().to_string();
    let body = push_tag(&url, "app", tag, &peeled(&app.upstream, tag));
    client
        .post(format!("{base}/hooks/gitea"))
        .header("content-type", "application/json")
        .header("x-gitea-event", "push")
        .header("x-gitea-delivery", id)
        .header("x-gitea-signature", sign(SECRET, &body))
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_journal_answers_503_then_recovers_losing_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let tags: Vec<String> = (0..90).map(|n| format!("1.{n}.0+1")).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let app = repos(root, "app", &tag_refs);
    let enrollment = enrollment(root, &[("app", &app)], &[]);
    let disk = SmallDisk::mount(&root.join("disk"), "8m");
    let drone = FakeDrone::start();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut env = env(&disk.path.join("state"), &enrollment, &drone.url());
    set(&mut env, "CANON_BIND", &format!("127.0.0.1:{port}"));
    let log = root.join("listener.log");
    let mut listener = spawn_listener(&env, &log);
    let client = canon_shared::http_client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_healthy(&client, &base).await;

    let mut acknowledged = std::collections::BTreeSet::new();
    let mut refused = Vec::new();
    for (n, tag) in tags[..20].iter().enumerate() {
        let id = format!("before-{n}");
        assert_eq!(push(&client, &base, &app, tag, &id).await, 202, "{tag}");
        acknowledged.insert(id);
    }

    // The disk fills up: deliveries are refused with 503 (the sender knows to send again), and
    // the listener goes on answering. The journal's write-ahead log may still have room from
    // before (SQLite reuses it after a checkpoint), so the first few may yet be journaled: send
    // until ten are refused, from at most fifty.
    let filler = disk.fill();
    let mut next = 20;
    while refused.len() < 10 && next < 70 {
        let tag = &tags[next];
        let id = format!("full-{}", next - 20);
        match push(&client, &base, &app, tag, &id).await {
            202 => {
                acknowledged.insert(id);
            }
            503 => refused.push((tag.clone(), id)),
            other => panic!("{tag} answered {other} on a full disk"),
        }
        next += 1;
    }
    assert!(
        refused.len() >= 10,
        "a full disk must refuse deliveries, refused {} of {}",
        refused.len(),
        next - 20
    );
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert!(health.status().is_success());

    // Space comes back: the refused deliveries, sent again, and new ones are journaled.
    std::fs::remove_file(&filler).unwrap();
    for (tag, id) in &refused {
        assert_eq!(
            push(&client, &base, &app, tag, id).await,
            202,
            "{tag} again"
        );
        acknowledged.insert(id.clone());
    }
    for (n, tag) in tags[next..].iter().enumerate() {
        let id = format!("after-{n}");
        assert_eq!(push(&client, &base, &app, tag, &id).await, 202, "{tag}");
        acknowledged.insert(id);
    }
    let stored = journaled(&client, &base).await;
    let missing: Vec<&String> = acknowledged.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not journaled: {missing:?}"
    );

    // And after a restart, from the disk alone.
    listener.kill().unwrap();
    listener.wait().unwrap();
    let _listener = spawn_listener(&env, &log);
    wait_healthy(&client, &base).await;
    let stored = journaled(&client, &base).await;
    let missing: Vec<&String> = acknowledged.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but lost after a restart: {missing:?}"
    );
    let finished = eventually(60, || async { drone.builds().len() == tags.len() }).await;
    assert!(
        finished,
        "every tag gets its one build once there is room: {} of {}",
        drone.builds().len(),
        tags.len()
    );
}
