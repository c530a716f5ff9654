//! Test support: real git repos in temp dirs, a loopback Drone stand-in, signing, settings.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use canon_listener::config::Settings;
use canon_shared::secret::Secret;
use warp::Filter;

pub const SECRET: &str = "test-secret-0123456789";
pub const ROTATED: &str = "rotated-secret-0123456789";

/// Returns the lower-case hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    canon_listener::verify::sign_hex(&Secret::new(secret), body)
}

/// Runs git hermetically in `dir`.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A recipe's upstream (a work tree with `main`) and its bare mirror.
pub struct Repos {
    pub upstream: PathBuf,
    pub mirror: PathBuf,
}

/// Creates an upstream with one commit and `tags` (lightweight), and an empty bare mirror.
pub fn repos(root: &Path, name: &str, tags: &[&str]) -> Repos {
    let upstream = root.join(format!("{name}-up"));
    let mirror = root.join(format!("{name}-mirror.git"));
    std::fs::create_dir_all(&upstream).unwrap();
    std::fs::create_dir_all(&mirror).unwrap();
    git(&upstream, &["init", "-q", "-b", "main"]);
    std::fs::write(upstream.join("compose.yml"), format!("# {name}\n")).unwrap();
    git(&upstream, &["add", "."]);
    git(&upstream, &["commit", "-q", "-m", "first"]);
    for t in tags {
        git(&upstream, &["tag", t]);
    }
    git(&mirror, &["init", "-q", "--bare"]);
    Repos { upstream, mirror }
}

/// Returns the commit `rev` names in `repo`.
pub fn rev(repo: &Path, r: &str) -> String {
    git(repo, &["rev-parse", &format!("{r}^{{commit}}")])
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
        ("CANON_DRONE_TOKEN", "drone-token".to_string()),
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

pub fn create_tag(repo_url: &str, full_name: &str, tag: &str, sha: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({
        "ref": tag, "ref_type": "tag", "sha": sha,
        "repository": {"full_name": full_name, "clone_url": repo_url, "html_url": repo_url},
    }))
    .unwrap()
}

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

/// A Drone stand-in on loopback: creates and lists builds, can fail or answer `null`.
#[derive(Clone, Default)]
pub struct FakeDrone {
    pub builds: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Raw query strings of every create call.
    pub creates: Arc<Mutex<Vec<String>>>,
    /// Create calls to answer with 500 before succeeding.
    pub fail_creates: Arc<AtomicU32>,
    /// Status to answer every call with instead (0 = none).
    pub force_status: Arc<AtomicU32>,
    /// Answer creates with `null` (no pipeline matched).
    pub null_creates: Arc<AtomicU32>,
}

impl FakeDrone {
    /// Starts the stand-in; returns it and its base URL.
    pub async fn start() -> (Self, String) {
        let fake = FakeDrone::default();
        let f1 = fake.clone();
        let create = warp::post()
            .and(warp::path!("api" / "repos" / String / String / "builds"))
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::optional::<String>("authorization"))
            .map(move |_o: String, _n: String, q: String, auth: Option<String>| f1.create(q, auth));
        let f2 = fake.clone();
        let list = warp::get()
            .and(warp::path!("api" / "repos" / String / String / "builds"))
            .and(warp::query::<BTreeMap<String, String>>())
            .map(move |_o: String, _n: String, q: BTreeMap<String, String>| f2.list(q));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(create.or(list)).incoming(listener).run());
        (fake, format!("http://{addr}"))
    }

    fn forced(&self) -> Option<warp::reply::WithStatus<warp::reply::Json>> {
        let s = self.force_status.load(Ordering::SeqCst);
        (s != 0).then(|| {
            warp::reply::with_status(
                warp::reply::json(&serde_json::json!({"message": "forced"})),
                warp::http::StatusCode::from_u16(s as u16).unwrap(),
            )
        })
    }

    fn create(
        &self,
        query: String,
        auth: Option<String>,
    ) -> warp::reply::WithStatus<warp::reply::Json> {
        assert_eq!(auth.as_deref(), Some("Bearer drone-token"));
        if let Some(r) = self.forced() {
            return r;
        }
        self.creates.lock().unwrap().push(query.clone());
        if self.fail_creates.load(Ordering::SeqCst) > 0 {
            self.fail_creates.fetch_sub(1, Ordering::SeqCst);
            return warp::reply::with_status(
                warp::reply::json(&serde_json::json!({"message": "database is locked"})),
                warp::http::StatusCode::INTERNAL_SERVER_ERROR,
            );
        }
        if self.null_creates.load(Ordering::SeqCst) > 0 {
            return warp::reply::with_status(
                warp::reply::json(&serde_json::Value::Null),
                warp::http::StatusCode::OK,
            );
        }
        let mut params = BTreeMap::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            if k != "branch" {
                params.insert(k.to_string(), v);
            }
        }
        let mut builds = self.builds.lock().unwrap();
        let number = builds.len() as u64 + 1;
        let b = serde_json::json!({"id": number * 10, "number": number, "status": "pending", "event": "custom",
            "link": format!("http://drone.test/canon/ci/{number}"), "params": params});
        builds.push(b.clone());
        warp::reply::with_status(warp::reply::json(&b), warp::http::StatusCode::OK)
    }

    fn list(&self, q: BTreeMap<String, String>) -> warp::reply::WithStatus<warp::reply::Json> {
        if let Some(r) = self.forced() {
            return r;
        }
        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let per: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(25);
        let builds = self.builds.lock().unwrap();
        let newest_first: Vec<_> = builds
            .iter()
            .rev()
            .skip((page - 1) * per)
            .take(per)
            .cloned()
            .collect();
        warp::reply::with_status(warp::reply::json(&newest_first), warp::http::StatusCode::OK)
    }

    /// Returns how many builds carry CANON_RECIPE=recipe and CANON_TAG=tag.
    pub fn count(&self, recipe: &str, tag: &str) -> usize {
        self.builds
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["params"]["CANON_RECIPE"] == recipe && b["params"]["CANON_TAG"] == tag)
            .count()
    }
}

/// Decodes `%XX` (and leaves `+` as `+`, unlike form decoding: the client must send `%2B`).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else if b[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
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
