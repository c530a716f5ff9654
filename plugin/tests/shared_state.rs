//! One state dir, two users: the sweep runs as root (as the plugin image does, for the Docker
//! socket) and the listener as an unprivileged user; the state dir belongs to a group both
//! share, with the setgid bit. Each must be able to read and write what the other created: the
//! mirror cache, the canonical record, the locks.

use crate::support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use canon_testkit::drone::{self, FakeDrone};
use canon_testkit::git::hermetic;
use canon_testkit::loopback::free_port;
use canon_testkit::process::{printed, KillOnDrop};
use canon_testkit::workspace;
use hmac::{KeyInit, Mac};
use support::Fixture;

/// The group the state dir belongs to, shared by both users.
const GROUP: u32 = 4242;
/// The listener's user: `nobody`, with [`GROUP`] as its only group.
const USER: u32 = 65534;
const SECRET: &str = "shared-state-secret-0123";

/// Returns the listener binary built before the tests (`scripts/test.sh`); this test
/// never builds it.
fn listener_binary() -> PathBuf {
    workspace::prebuilt(workspace::LISTENER_BIN_ENV)
}

fn chmod_all(path: &Path, mode: &str) {
    let out = Command::new("chmod")
        .args(["-R", mode])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", printed(&out));
}

/// An HTTP client with canon's TLS provider installed.
fn client() -> reqwest::Client {
    canon_shared::http_client::builder().build().unwrap()
}

/// Sweeps the fixture inline as root with its green harness.
fn sweep_as_root(f: &Fixture) -> Output {
    let harness = f.green_harness();
    Command::new(env!("CARGO_BIN_EXE_canon-plugin"))
        .current_dir(f.dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .args([
            "sweep",
            "--init",
            "--inline",
            "--runner",
            "command",
            "--command",
            &harness,
        ])
        .arg("--config")
        .arg(&f.enrollment)
        .arg("--state-dir")
        .arg(&f.state)
        .arg("--work-dir")
        .arg(&f.runs)
        .arg("--env")
        .arg(format!("HARNESS_LOG={}", f.log.display()))
        .output()
        .expect("canon-plugin runs")
}

fn signed_push(base: &str, f: &Fixture, tag: &str, delivery: &str) -> reqwest::RequestBuilder {
    let sha = f.peeled(tag);
    let url = f.upstream.display().to_string();
    let body = serde_json::to_vec(&serde_json::json!({
        "ref": format!("refs/tags/{tag}"),
        "before": "0".repeat(40),
        "after": sha,
        "head_commit": {"id": sha},
        "repository": {"full_name": "upstream/app", "clone_url": url, "html_url": url},
    }))
    .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = hex::encode(mac.finalize().into_bytes());
    canon_shared::http_client::builder()
        .build()
        .unwrap()
        .post(format!("{base}/hooks/gitea"))
        .header("content-type", "application/json")
        .header("x-gitea-event", "push")
        .header("x-gitea-delivery", delivery)
        .header("x-gitea-signature", signature)
        .body(body)
}

/// Returns the listener's jobs once every one of them has finished, or panics after 30 s.
async fn finished_jobs(base: &str, count: usize, log: &Path) -> Vec<serde_json::Value> {
    let started = Instant::now();
    loop {
        let jobs: Vec<serde_json::Value> =
            match client().get(format!("{base}/api/jobs")).send().await {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => Vec::new(),
            };
        let open = |j: &serde_json::Value| {
            matches!(j["state"].as_str(), Some("queued" | "running" | "retrying"))
        };
        if jobs.len() == count && !jobs.iter().any(open) {
            return jobs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "jobs did not finish: {jobs:#?}\n--- listener log\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_as_root_and_the_listener_as_another_user_share_one_state_dir() {
    // SAFETY: geteuid only reads this process's effective user id.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test runs the sweep as root and the listener as another user, so it needs root"
    );
    let f = Fixture::new();
    f.release("1.0.0+1", true);
    // The repositories stand for a forge: anyone may read upstream and write the mirror. The
    // temp dir itself is private by default.
    std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(&f.state).unwrap();
    // Owned by the listener's user, as the operator guide says: canon uses only files of its own
    // user, root or the state dir's owner.
    std::os::unix::fs::chown(&f.state, Some(USER), Some(GROUP)).unwrap();
    std::fs::set_permissions(&f.state, std::fs::Permissions::from_mode(0o2775)).unwrap();

    let out = sweep_as_root(&f);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let record = f.state.join("app/canonical.json");
    let meta = std::fs::metadata(&record).expect("the sweep promoted 1.0.0+1");
    assert_eq!(
        (meta.gid(), meta.mode() & 0o060),
        (GROUP, 0o060),
        "the record is the group's to read and write"
    );

    // A newer and an older release, then the listener hears of both.
    f.release("1.1.0+1", true);
    f.release("0.9.0+1", true);
    chmod_all(&f.upstream, "a+rX");
    chmod_all(&f.mirror, "a+rwX");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let drone = FakeDrone::start();
    let log = f.dir.path().join("listener.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(listener_binary());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .env("CANON_BIND", format!("127.0.0.1:{port}"))
        .env("CANON_STATE_DIR", &f.state)
        .env("CANON_ENROLLMENT", &f.enrollment)
        .env("CANON_WEBHOOK_SECRETS", SECRET)
        .env("CANON_DRONE_SERVER", drone.url())
        .env("CANON_DRONE_TOKEN", drone::TOKEN)
        .env("CANON_DRONE_REPO", "canon/ci")
        .env("CANON_RETRY_BASE", "20ms")
        .env("CANON_RETRY_MAX", "200ms")
        .env("CANON_MAX_ATTEMPTS", "3")
        .uid(USER)
        .gid(GROUP)
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file));
    let _listener = KillOnDrop::new(hermetic(&mut cmd).spawn().expect("the listener starts"));
    let mut up = false;
    for _ in 0..200 {
        if client().get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        up,
        "the listener did not come up:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    for (n, tag) in ["1.1.0+1", "0.9.0+1"].into_iter().enumerate() {
        let answer = signed_push(&base, &f, tag, &format!("d-{n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 202, "{tag}");
    }
    let jobs = finished_jobs(&base, 2, &log).await;
    let state_of = |tag: &str| {
        jobs.iter()
            .find(|j| j["tag"] == tag)
            .map(|j| (j["state"].clone(), j["error"].clone()))
            .unwrap()
    };
    // The newer tag synced the mirror through the cache root made, and started its build; the
    // older one was measured against the record root wrote.
    assert_eq!(state_of("1.1.0+1").0, "done", "{jobs:#?}");
    assert_eq!(state_of("0.9.0+1").0, "skipped", "{jobs:#?}");
    assert_eq!(drone.count("app", "1.1.0+1"), 1);
    assert_eq!(drone.count("app", "0.9.0+1"), 0);
    assert_eq!(
        f.peeled("1.1.0+1"),
        canon_testkit::git::peeled(&f.mirror, "1.1.0+1")
    );
    let listener_log = std::fs::read_to_string(&log).unwrap();
    assert!(!listener_log.contains("ermission denied"), "{listener_log}");

    // And root's next sweep works over what the listener wrote.
    chmod_all(&f.mirror, "a+rwX");
    let out = sweep_as_root(&f);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let canonical = f.state_dir().read_canonical(&f.name()).unwrap().unwrap();
    assert_eq!(canonical.version.to_string(), "1.1.0+1");
}
