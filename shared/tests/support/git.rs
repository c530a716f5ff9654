//! Hermetic git fixtures and a git smart-HTTP server with basic auth.
//!
//! Every git command gets `GIT_CONFIG_GLOBAL=/dev/null` and `GIT_CONFIG_NOSYSTEM=1` and a fixed
//! identity, so the machine's configuration never leaks in. The HTTP server runs the real
//! `git http-backend` as a CGI program; it logs each request (`GET /upstream.git/info/refs?...`)
//! so tests can count listings and prove a no-op sync did nothing else.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

/// Builds a hermetic git command running in `dir`.
pub fn git_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    c
}

/// Runs git in `dir` and returns its trimmed stdout; panics with stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir, args)
        .stdin(Stdio::null())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Creates a bare repository at `path`.
pub fn bare(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    git(path, &["init", "--bare", "-q"]);
}

/// A work tree cloned from a bare upstream, for making commits and tags.
pub struct Work {
    pub dir: PathBuf,
}

impl Work {
    /// Initialises a work tree at `dir` whose `origin` is `remote` (a path).
    pub fn new(dir: &Path, remote: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        git(dir, &["init", "-q", "-b", "main"]);
        git(dir, &["remote", "add", "origin", remote.to_str().unwrap()]);
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// Commits a change to `file` and returns the commit id.
    pub fn commit(&self, file: &str, content: &str) -> String {
        std::fs::write(self.dir.join(file), content).unwrap();
        git(&self.dir, &["add", file]);
        git(
            &self.dir,
            &["commit", "-q", "-m", &format!("change {file}")],
        );
        self.head()
    }

    /// Returns HEAD's commit id.
    pub fn head(&self) -> String {
        git(&self.dir, &["rev-parse", "HEAD"])
    }

    /// Creates a lightweight tag at HEAD.
    pub fn tag(&self, name: &str) {
        git(&self.dir, &["tag", name]);
    }

    /// Creates an annotated tag at HEAD and returns the tag object id.
    pub fn annotated_tag(&self, name: &str) -> String {
        git(
            &self.dir,
            &["tag", "-a", "-m", &format!("release {name}"), name],
        );
        git(&self.dir, &["rev-parse", &format!("refs/tags/{name}")])
    }

    /// Runs git in the work tree.
    pub fn git(&self, args: &[&str]) -> String {
        git(&self.dir, args)
    }

    /// Force-pushes `main` and all tags to `origin`.
    pub fn push_all(&self) {
        git(&self.dir, &["push", "-q", "--force", "origin", "main"]);
        git(
            &self.dir,
            &["push", "-q", "--force", "origin", "refs/tags/*:refs/tags/*"],
        );
    }
}

/// Returns `ref -> oid` for every ref of a (bare) repository.
pub fn refs(repo: &Path) -> Vec<(String, String)> {
    let out = git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"]);
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (r, o) = l.split_once(' ').unwrap();
            (r.to_string(), o.to_string())
        })
        .collect()
}

/// Returns the refs of `repo` under `prefix`.
pub fn refs_under(repo: &Path, prefix: &str) -> Vec<(String, String)> {
    refs(repo)
        .into_iter()
        .filter(|(r, _)| r.starts_with(prefix))
        .collect()
}

/// Returns the branch and tag refs of `repo` for `branch` (what a faithful mirror must equal).
pub fn synced_refs(repo: &Path, branch: &str) -> Vec<(String, String)> {
    let head = format!("refs/heads/{branch}");
    refs(repo)
        .into_iter()
        .filter(|(r, _)| *r == head || r.starts_with("refs/tags/"))
        .collect()
}

/// Encodes bytes as standard base64 (for basic-auth headers).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A loopback git smart-HTTP server over a folder of bare repositories.
pub struct GitHttpServer {
    pub port: u16,
    server: Arc<tiny_http::Server>,
    log: Arc<Mutex<Vec<String>>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl GitHttpServer {
    /// Serves the bare repositories under `root`; every request must carry basic auth with
    /// `user` and `token` (any user name is accepted when `user` is `None`).
    pub fn start(root: &Path, user: Option<&str>, token: &str) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let port = server.server_addr().to_ip().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let root = root.to_path_buf();
        let user = user.map(str::to_string);
        let token = token.to_string();
        let (srv, lg) = (server.clone(), log.clone());
        let handle = thread::spawn(move || {
            for req in srv.incoming_requests() {
                let (root, user, token, lg) =
                    (root.clone(), user.clone(), token.clone(), lg.clone());
                thread::spawn(move || serve(req, &root, user.as_deref(), &token, &lg));
            }
        });
        Self {
            port,
            server,
            log,
            handle: Some(handle),
        }
    }

    /// Returns `http://127.0.0.1:<port>/<name>` (no credentials).
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// Returns the request log and clears it.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn header<'a>(req: &'a tiny_http::Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn authorized(req: &tiny_http::Request, user: Option<&str>, token: &str) -> bool {
    let Some(value) = header(req, "Authorization") else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    match user {
        Some(u) => encoded.trim() == base64(format!("{u}:{token}").as_bytes()),
        None => {
            // Any user name: compare against every plausible encoding by decoding instead.
            decode_basic(encoded.trim()).is_some_and(|(_, p)| p == token)
        }
    }
}

fn decode_basic(s: &str) -> Option<(String, String)> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = T.iter().position(|t| *t == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn serve(
    mut req: tiny_http::Request,
    root: &Path,
    user: Option<&str>,
    token: &str,
    log: &Mutex<Vec<String>>,
) {
    let url = req.url().to_string();
    let method = req.method().as_str().to_string();
    if !authorized(&req, user, token) {
        let resp = tiny_http::Response::from_string("authentication required")
            .with_status_code(401)
            .with_header(
                tiny_http::Header::from_bytes("WWW-Authenticate", "Basic realm=\"git\"").unwrap(),
            );
        let _ = req.respond(resp);
        return;
    }
    // Only authorized requests are logged: libgit2 first asks without credentials and retries
    // after the 401, which is not a second listing.
    log.lock().unwrap().push(format!("{method} {url}"));
    let mut body = Vec::new();
    let _ = req.as_reader().read_to_end(&mut body);
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", user.unwrap_or("tester"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ct) = header(&req, "Content-Type") {
        cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(ce) = header(&req, "Content-Encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", ce);
    }
    if let Some(p) = header(&req, "Git-Protocol") {
        cmd.env("GIT_PROTOCOL", p);
    }
    let mut child = cmd.spawn().expect("git http-backend starts");
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().expect("git http-backend runs");
    let _ = writer.join();
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, sep)) = split else {
        let resp = tiny_http::Response::from_string(format!(
            "http-backend failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
        .with_status_code(500);
        let _ = req.respond(resp);
        return;
    };
    let head = String::from_utf8_lossy(&raw[..at]).to_string();
    let mut status = 200;
    let mut resp = tiny_http::Response::from_data(raw[at + sep..].to_vec());
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("Status") {
            status = v
                .split(' ')
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
        } else if let Ok(h) = tiny_http::Header::from_bytes(k.trim(), v) {
            resp = resp.with_header(h);
        }
    }
    let _ = req.respond(resp.with_status_code(status));
}

/// Returns a loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
