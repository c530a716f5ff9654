//! What the listener's tests share beyond the kit (`canon-testkit`, which brings hermetic git
//! and the Drone stand-in): recipes as git repos with an enrollment, listener settings, webhook
//! payloads and signed deliveries, and polling.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use canon_listener::config::Settings;
use canon_shared::secret::Secret;
use canon_testkit::git::{bare, git};

/// The webhook secret deliveries are signed with.
pub const SECRET: &str = "test-secret-0123456789";
/// A second secret the listener accepts, as during a rotation.
pub const ROTATED: &str = "rotated-secret-0123456789";

/// Returns the lower-case hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    canon_listener::verify::sign_hex(&Secret::new(secret), body)
}

/// A recipe's upstream (a work tree with `main`) and its bare mirror.
pub struct Repos {
    /// The upstream work tree.
    pub upstream: PathBuf,
    /// The bare mirror.
    pub mirror: PathBuf,
}

/// Creates an upstream with one commit and `tags` (lightweight), and an empty bare mirror.
pub fn repos(root: &Path, name: &str, tags: &[&str]) -> Repos {
    let upstream = root.join(format!("{name}-up"));
    let mirror = root.join(format!("{name}-mirror.git"));
    std::fs::create_dir_all(&upstream).unwrap();
    git(&upstream, &["init", "-q", "-b", "main"]);
    std::fs::write(upstream.join("compose.yml"), format!("# {name}\n")).unwrap();
    git(&upstream, &["add", "."]);
    git(&upstream, &["commit", "-q", "-m", "first"]);
    for t in tags {
        git(&upstream, &["tag", t]);
    }
    bare(&mirror);
    Repos { upstream, mirror }
}

/// Writes an enrollment file: local recipes (path upstreams) plus forge ones (`owner/name` on
/// `https://git.example.org`).
pub fn enrollment(root: &Path, local: &[(&str, &Repos)], forge: &[(&str, &str)]) -> PathBuf {
    let mut y = String::from("forge:\n  upstream: https://git.example.org\n  mirror: https://mirror.example.org\nrecipes:\n");
    for (name, r) in local {
        y.push_str(&format!(
            "  - name: {name}\n    upstream: {}\n    mirror: {}\n",
            r.upstream.display(),
            r.mirror.display()
        ));
    }
    for (name, full) in forge {
        y.push_str(&format!(
            "  - name: {name}\n    upstream: {full}\n    mirror: mirrors/{name}\n"
        ));
    }
    let p = root.join("enrollment.yml");
    std::fs::write(&p, y).unwrap();
    p
}

/// Settings pairs for a listener on 127.0.0.1:0.
pub fn env(state: &Path, enrollment: &Path, drone: &str) -> Vec<(String, String)> {
    [
        ("CANON_BIND", "127.0.0.1:0".to_string()),
        ("CANON_STATE_DIR", state.display().to_string()),
        ("CANON_ENROLLMENT", enrollment.display().to_string()),
        ("CANON_WEBHOOK_SECRETS", format!("{SECRET},{ROTATED}")),
        ("CANON_DRONE_SERVER", drone.to_string()),
        ("CANON_DRONE_TOKEN", canon_testkit::drone::TOKEN.to_string()),
        ("CANON_DRONE_REPO", "canon/ci".to_string()),
        ("CANON_RETRY_BASE", "20ms".to_string()),
        ("CANON_RETRY_MAX", "200ms".to_string()),
        ("CANON_MAX_ATTEMPTS", "20".to_string()),
        ("CANON_WORKERS", "2".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Returns validated listener settings from `pairs`; panics when they are not valid.
pub fn settings(pairs: Vec<(String, String)>) -> Settings {
    Settings::from_pairs(pairs).expect("test settings are valid")
}

/// A push payload for a new tag (lightweight: `after` is the commit).
pub fn push_tag(repo_url: &str, full_name: &str, tag: &str, sha: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({
        "ref": format!("refs/tags/{tag}"),
        "before": "0".repeat(40),
        "after": sha,
        "commits": [],
        "total_commits": 0,
        "head_commit": {"id": sha, "message": "first"},
        "repository": {"full_name": full_name, "clone_url": repo_url, "html_url": repo_url},
    }))
    .unwrap()
}

/// A create payload for a new tag.
pub fn create_tag(repo_url: &str, full_name: &str, tag: &str, sha: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({
        "ref": tag, "ref_type": "tag", "sha": sha,
        "repository": {"full_name": full_name, "clone_url": repo_url, "html_url": repo_url},
    }))
    .unwrap()
}

/// A published release payload for `tag`.
pub fn release(repo_url: &str, full_name: &str, tag: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({
        "action": "published",
        "release": {"id": 1, "tag_name": tag, "draft": false, "prerelease": false, "target_commitish": ""},
        "repository": {"full_name": full_name, "clone_url": repo_url, "html_url": repo_url},
    }))
    .unwrap()
}

static DELIVERY: AtomicU64 = AtomicU64::new(1);

/// Posts a signed Gitea delivery; returns (status, body).
pub async fn deliver(
    client: &reqwest::Client,
    base: &str,
    event: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let id = format!(
        "00000000-0000-4000-8000-{:012}",
        DELIVERY.fetch_add(1, Ordering::Relaxed)
    );
    let r = client
        .post(format!("{base}/hooks/gitea"))
        .header("content-type", "application/json")
        .header("x-gitea-event", event)
        .header("x-gitea-delivery", id)
        .header("x-gitea-signature", sign(SECRET, body))
        .body(body.to_vec())
        .send()
        .await
        .expect("the listener answers");
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, v)
}

/// Polls `check` every 20 ms until it is true or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

/// Starts the listener binary with exactly `pairs` (and `PATH`) as its environment, its output
/// appended to `log`.
pub fn spawn_listener(
    pairs: &[(String, String)],
    log: &std::path::Path,
) -> canon_testkit::process::KillOnDrop {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_canon-listener"));
    cmd.env_clear()
        .envs(pairs.iter().cloned())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::from(log.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(log));
    canon_testkit::process::KillOnDrop::new(
        canon_testkit::git::hermetic(&mut cmd)
            .spawn()
            .expect("the listener binary starts"),
    )
}

/// Waits until `/healthz` answers, or panics after 20 s.
pub async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let ok = eventually(20, || async {
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(ok, "the listener did not come up");
}
