//! A git smart-HTTP server on loopback over a folder of bare repositories: the real
//! `git http-backend` as a CGI program behind basic auth.
//!
//! It logs each authorized request (`GET /upstream.git/info/refs?...`) so tests can count
//! listings and prove that a no-op sync did nothing else.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use base64::Engine;

use crate::loopback::{header, LoopbackServer};

/// A loopback git smart-HTTP server; stopped on drop.
pub struct GitHttpServer {
    /// The port it listens on.
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    _server: LoopbackServer,
}

impl GitHttpServer {
    /// Serves the bare repositories under `root`; every request must carry basic auth with
    /// `user` and `token` (any user name is accepted when `user` is `None`).
    pub fn start(root: &Path, user: Option<&str>, token: &str) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let access = Access {
            user: user.map(str::to_string),
            token: token.to_string(),
        };
        let (root, lg) = (root.to_path_buf(), log.clone());
        let server = LoopbackServer::start(move |req| serve(req, &root, &access, &lg));
        Self {
            port: server.port(),
            log,
            _server: server,
        }
    }

    /// Returns `http://127.0.0.1:<port>/<name>` (no credentials).
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// Returns the request log (`METHOD /path?query`) and clears it.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// The credentials a request must carry.
struct Access {
    user: Option<String>,
    token: String,
}

impl Access {
    fn allows(&self, req: &tiny_http::Request) -> bool {
        let Some(encoded) = header(req, "Authorization").and_then(|v| v.strip_prefix("Basic "))
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let text = String::from_utf8_lossy(&decoded);
        let Some((user, password)) = text.split_once(':') else {
            return false;
        };
        password == self.token && self.user.as_deref().is_none_or(|u| u == user)
    }
}

fn serve(mut req: tiny_http::Request, root: &Path, access: &Access, log: &Mutex<Vec<String>>) {
    let url = req.url().to_string();
    let method = req.method().as_str().to_string();
    if !access.allows(&req) {
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
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", access.user.as_deref().unwrap_or("tester"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    super::hermetic(&mut cmd);
    for (name, var) in [
        ("Content-Type", "CONTENT_TYPE"),
        ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
        ("Git-Protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(value) = header(&req, name) {
            cmd.env(var, value);
        }
    }
    let mut child = cmd.spawn().expect("git http-backend starts");
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().expect("git http-backend runs");
    let _ = writer.join();
    let _ = req.respond(cgi_response(&out.stdout, &out.stderr));
}

/// Turns a CGI program's output (headers, a blank line, the body) into an HTTP response; a 500
/// with the program's stderr when there is no header block.
fn cgi_response(raw: &[u8], stderr: &[u8]) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, sep)) = split else {
        return tiny_http::Response::from_string(format!(
            "http-backend failed: {}",
            String::from_utf8_lossy(stderr)
        ))
        .with_status_code(500);
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
    resp.with_status_code(status)
}
