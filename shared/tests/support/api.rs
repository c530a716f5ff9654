//! Loopback forge API servers: one answering in the shapes of Gitea/Forgejo's swagger
//! (`/api/v1`, `Authorization: token`, `limit` clamped to `max_items`, `X-Total-Count`, optional
//! `null` list items, 412 on closing a merged PR), one in GitHub's shapes (`per_page`, Bearer
//! tokens, git refs and tag objects). Both keep their state in [`ForgeState`] and log requests.

use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::{json, Value};

/// A PR the fake forge holds.
#[derive(Debug, Clone)]
pub struct FakePr {
    pub number: u64,
    pub head_sha: String,
    pub head_ref: String,
    pub state: String,
    pub merged: bool,
    /// Answer 412 to the close (Gitea's "already merged" after its own detection).
    pub reject_412: bool,
    /// Render as `null` in lists (Forgejo's PR that failed to load).
    pub broken: bool,
}

impl FakePr {
    /// Returns an open PR.
    pub fn open(number: u64, head_sha: &str) -> Self {
        Self {
            number,
            head_sha: head_sha.to_string(),
            head_ref: format!("pr-{number}"),
            state: "open".into(),
            merged: false,
            reject_412: false,
            broken: false,
        }
    }
}

/// A tag the fake forge holds.
#[derive(Debug, Clone)]
pub struct FakeTag {
    pub name: String,
    /// The tag object for an annotated tag, else the commit.
    pub object: String,
    pub commit: String,
}

/// The forge's state.
#[derive(Debug, Clone)]
pub struct ForgeState {
    pub token: String,
    /// `owner/name` of the only repository.
    pub repo: String,
    pub prs: Vec<FakePr>,
    pub comments: Vec<(u64, String)>,
    pub tags: Vec<FakeTag>,
    pub hooks: Vec<Value>,
    /// Gitea's MAX_RESPONSE_ITEMS.
    pub max_items: usize,
    /// Send X-Total-Count on lists (Gitea does).
    pub total_header: bool,
}

impl ForgeState {
    /// Returns an empty repository `repo` guarded by `token`.
    pub fn new(repo: &str, token: &str) -> Self {
        Self {
            token: token.into(),
            repo: repo.into(),
            prs: Vec::new(),
            comments: Vec::new(),
            tags: Vec::new(),
            hooks: Vec::new(),
            max_items: 50,
            total_header: true,
        }
    }
}

/// One logged request.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: String,
}

struct Reply {
    status: u16,
    body: Value,
    headers: Vec<(String, String)>,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        body,
        headers: Vec::new(),
    }
}

/// Which API shape a fake forge speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Gitea,
    GitHub,
}

/// A loopback fake forge.
pub struct FakeForge {
    pub port: u16,
    pub state: Arc<Mutex<ForgeState>>,
    pub log: Arc<Mutex<Vec<Logged>>>,
    server: Arc<tiny_http::Server>,
    handle: Option<thread::JoinHandle<()>>,
}

impl FakeForge {
    /// Starts a fake forge of `shape` holding `state`.
    pub fn start(shape: Shape, state: ForgeState) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let port = server.server_addr().to_ip().unwrap().port();
        let state = Arc::new(Mutex::new(state));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (srv, st, lg) = (server.clone(), state.clone(), log.clone());
        let handle = thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let url = req.url().to_string();
                let (path, query) = url.split_once('?').unwrap_or((&url, ""));
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let logged = Logged {
                    method: req.method().as_str().to_string(),
                    path: path.to_string(),
                    query: query.to_string(),
                    authorization: req
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Authorization"))
                        .map(|h| h.value.as_str().to_string()),
                    body,
                };
                lg.lock().unwrap().push(logged.clone());
                let r = {
                    let mut s = st.lock().unwrap();
                    match shape {
                        Shape::Gitea => gitea(&mut s, &logged),
                        Shape::GitHub => github(&mut s, &logged),
                    }
                };
                let mut resp = tiny_http::Response::from_string(r.body.to_string())
                    .with_status_code(r.status)
                    .with_header(
                        tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap(),
                    );
                for (k, v) in r.headers {
                    resp = resp.with_header(tiny_http::Header::from_bytes(k, v).unwrap());
                }
                let _ = req.respond(resp);
            }
        });
        Self {
            port,
            state,
            log,
            server,
            handle: Some(handle),
        }
    }

    /// Returns the base URL (`http://127.0.0.1:<port>`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Returns a copy of the request log.
    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Splits `/…/repos/{o}/{r}/rest` after `prefix`; returns (owner/name, rest segments decoded).
fn route(path: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let rest = path.strip_prefix(prefix)?.strip_prefix("/repos/")?;
    let mut parts = rest.split('/');
    let owner = decode(parts.next()?);
    let name = decode(parts.next()?);
    Some((format!("{owner}/{name}"), parts.map(decode).collect()))
}

fn page<T: Clone>(items: &[T], page: usize, size: usize) -> Vec<T> {
    items
        .iter()
        .skip((page.max(1) - 1) * size)
        .take(size)
        .cloned()
        .collect()
}

fn gitea_pr(p: &FakePr) -> Value {
    json!({
        "id": p.number * 10, "number": p.number, "title": format!("PR {}", p.number),
        "state": p.state, "merged": p.merged, "draft": false, "flow": 0,
        "html_url": format!("http://forge.invalid/pulls/{}", p.number),
        "head": {"ref": p.head_ref, "sha": p.head_sha, "label": p.head_ref, "repo_id": 1},
        "base": {"ref": "main", "sha": "", "label": "main", "repo_id": 1},
        "unknown_future_field": {"x": 1}
    })
}

fn gitea(s: &mut ForgeState, req: &Logged) -> Reply {
    if req.authorization.as_deref() != Some(&format!("token {}", s.token)) {
        return reply(
            401,
            json!({"message": "token is required", "url": "http://forge.invalid/api/swagger"}),
        );
    }
    let Some((repo, rest)) = route(&req.path, "/api/v1") else {
        return reply(404, json!({"message": "not found"}));
    };
    if repo != s.repo {
        return reply(
            404,
            json!({"message": "The target couldn't be found.", "errors": []}),
        );
    }
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let limit = query_param(&req.query, "limit")
        .and_then(|l| l.parse::<i64>().ok())
        .unwrap_or(0);
    let size = if limit <= 0 {
        30
    } else {
        (limit as usize).min(s.max_items)
    };
    let pg = query_param(&req.query, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1);
    let listed = |items: Vec<Value>, s: &ForgeState| {
        let total = items.len();
        let mut r = reply(200, Value::Array(page(&items, pg, size)));
        if s.total_header {
            r.headers.push(("X-Total-Count".into(), total.to_string()));
        }
        r
    };
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", ["pulls"]) => {
            let state = query_param(&req.query, "state").unwrap_or_else(|| "open".into());
            let items: Vec<Value> = s
                .prs
                .iter()
                .filter(|p| state == "all" || p.state == state)
                .map(|p| if p.broken { Value::Null } else { gitea_pr(p) })
                .collect();
            listed(items, s)
        }
        ("GET", ["pulls", n]) => match s.prs.iter().find(|p| p.number.to_string() == *n) {
            Some(p) => reply(200, gitea_pr(p)),
            None => reply(404, json!({"message": "pull request does not exist"})),
        },
        ("PATCH", ["pulls", n]) => {
            let Some(p) = s.prs.iter_mut().find(|p| p.number.to_string() == *n) else {
                return reply(404, json!({"message": "pull request does not exist"}));
            };
            if p.reject_412 || p.merged {
                return reply(
                    412,
                    json!({"message": "cannot change state of this pull request, it was already merged"}),
                );
            }
            let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            if let Some(st) = body.get("state").and_then(Value::as_str) {
                p.state = st.to_string();
            }
            reply(201, gitea_pr(p))
        }
        ("POST", ["issues", n, "comments"]) => {
            let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            let text = body
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            s.comments.push((n.parse().unwrap_or(0), text.clone()));
            reply(201, json!({"id": s.comments.len(), "body": text}))
        }
        ("GET", ["tags"]) => {
            let items = s
                .tags
                .iter()
                .map(|t| json!({"name": t.name, "id": t.object, "message": "", "commit": {"sha": t.commit, "url": "", "created": "2024-01-01T00:00:00Z"}}))
                .collect();
            listed(items, s)
        }
        ("GET", ["tags", name]) => match s.tags.iter().find(|t| t.name == *name) {
            Some(t) => reply(
                200,
                json!({"name": t.name, "id": t.object, "commit": {"sha": t.commit}}),
            ),
            None => reply(404, json!({"message": "tag does not exist"})),
        },
        ("GET", ["hooks"]) => {
            let items = s.hooks.clone();
            listed(items, s)
        }
        ("POST", ["hooks"]) => {
            let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            let cfg = &body["config"];
            if cfg["url"].as_str().is_none() || cfg["content_type"].as_str().is_none() {
                return reply(
                    422,
                    json!({"message": "config.url and config.content_type are required"}),
                );
            }
            let id = s.hooks.len() as u64 + 1;
            let hook = json!({
                "id": id, "type": body["type"], "branch_filter": "",
                "config": {"url": cfg["url"], "content_type": cfg["content_type"], "http_method": "post"},
                "events": body.get("events").cloned().unwrap_or(json!(["push"])),
                "active": body.get("active").and_then(Value::as_bool).unwrap_or(false),
            });
            s.hooks.push(hook.clone());
            reply(201, hook)
        }
        ("PATCH", ["hooks", id]) => {
            // Gitea's `editHook`: url and content_type from the config when given (the secret is
            // never read), events and branch filter always replaced, `active` only when sent.
            let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            let want = id.parse::<u64>().ok();
            let Some(hook) = s.hooks.iter_mut().find(|h| h["id"].as_u64() == want) else {
                return reply(
                    404,
                    json!({"message": "The target couldn't be found.", "errors": []}),
                );
            };
            let cfg = &body["config"];
            if let Some(ct) = cfg["content_type"].as_str() {
                if ct != "json" && ct != "form" {
                    return reply(422, json!({"message": "Invalid content type"}));
                }
                hook["config"]["content_type"] = json!(ct);
            }
            if let Some(url) = cfg["url"].as_str() {
                hook["config"]["url"] = json!(url);
            }
            hook["events"] = body.get("events").cloned().unwrap_or(json!([]));
            hook["branch_filter"] = body.get("branch_filter").cloned().unwrap_or(json!(""));
            if let Some(active) = body.get("active").and_then(Value::as_bool) {
                hook["active"] = json!(active);
            }
            reply(200, hook.clone())
        }
        _ => reply(404, json!({"message": "no such route"})),
    }
}

fn github_pr(p: &FakePr) -> Value {
    json!({
        "number": p.number, "title": format!("PR {}", p.number), "state": p.state,
        "merged": p.merged, "merged_at": if p.merged { json!("2024-01-01T00:00:00Z") } else { Value::Null },
        "html_url": format!("https://github.invalid/pull/{}", p.number),
        "head": {"ref": p.head_ref, "sha": p.head_sha, "label": format!("o:{}", p.head_ref)},
        "base": {"ref": "main", "sha": "", "label": "o:main"}
    })
}

fn github(s: &mut ForgeState, req: &Logged) -> Reply {
    let auth_ok = req.authorization.as_deref() == Some(&format!("Bearer {}", s.token))
        || req.authorization.as_deref() == Some(&format!("token {}", s.token));
    if !auth_ok {
        return reply(
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
        );
    }
    let Some((repo, rest)) = route(&req.path, "") else {
        return reply(404, json!({"message": "Not Found"}));
    };
    if repo != s.repo {
        return reply(
            404,
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
        );
    }
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let per_page = query_param(&req.query, "per_page")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(30)
        .min(100);
    let pg = query_param(&req.query, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1);
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", ["pulls"]) => {
            let state = query_param(&req.query, "state").unwrap_or_else(|| "open".into());
            let items: Vec<Value> = s
                .prs
                .iter()
                .filter(|p| state == "all" || p.state == state)
                .map(github_pr)
                .collect();
            reply(200, Value::Array(page(&items, pg, per_page)))
        }
        ("GET", ["pulls", n]) => match s.prs.iter().find(|p| p.number.to_string() == *n) {
            Some(p) => reply(200, github_pr(p)),
            None => reply(404, json!({"message": "Not Found"})),
        },
        ("PATCH", ["pulls", n]) => {
            let Some(p) = s.prs.iter_mut().find(|p| p.number.to_string() == *n) else {
                return reply(404, json!({"message": "Not Found"}));
            };
            let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            if let Some(st) = body.get("state").and_then(Value::as_str) {
                p.state = st.to_string();
            }
            reply(200, github_pr(p))
        }
        ("POST", ["issues", n, "comments"]) => {
            let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            let text = body
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            s.comments.push((n.parse().unwrap_or(0), text.clone()));
            reply(201, json!({"id": s.comments.len(), "body": text}))
        }
        ("GET", ["git", "ref", "tags", name]) => match s.tags.iter().find(|t| t.name == *name) {
            Some(t) => {
                let kind = if t.object == t.commit {
                    "commit"
                } else {
                    "tag"
                };
                reply(
                    200,
                    json!({"ref": format!("refs/tags/{}", t.name), "object": {"type": kind, "sha": t.object}}),
                )
            }
            None => reply(404, json!({"message": "Not Found"})),
        },
        ("GET", ["git", "tags", sha]) => match s.tags.iter().find(|t| t.object == *sha) {
            Some(t) => reply(
                200,
                json!({"sha": t.object, "tag": t.name, "object": {"type": "commit", "sha": t.commit}}),
            ),
            None => reply(404, json!({"message": "Not Found"})),
        },
        ("GET", ["tags"]) => {
            let items: Vec<Value> = s
                .tags
                .iter()
                .map(|t| json!({"name": t.name, "commit": {"sha": t.commit, "url": ""}}))
                .collect();
            reply(200, Value::Array(page(&items, pg, per_page)))
        }
        ("GET", ["hooks"]) => reply(200, Value::Array(page(&s.hooks, pg, per_page))),
        ("POST", ["hooks"]) => {
            let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            let id = s.hooks.len() as u64 + 100;
            let hook = json!({
                "id": id, "name": "web", "active": body["active"], "events": body["events"],
                "config": {"url": body["config"]["url"], "content_type": body["config"]["content_type"], "insecure_ssl": "0"},
            });
            s.hooks.push(hook.clone());
            reply(201, hook)
        }
        ("PATCH", ["hooks", id]) => {
            // GitHub: `config` replaces the whole config, `events` the event list; `active` only
            // when sent.
            let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            let want = id.parse::<u64>().ok();
            let Some(hook) = s.hooks.iter_mut().find(|h| h["id"].as_u64() == want) else {
                return reply(404, json!({"message": "Not Found"}));
            };
            if let Some(cfg) = body.get("config") {
                if cfg["url"].as_str().is_none() {
                    return reply(422, json!({"message": "Validation Failed"}));
                }
                hook["config"] = json!({
                    "url": cfg["url"],
                    "content_type": cfg.get("content_type").cloned().unwrap_or(json!("form")),
                    "insecure_ssl": cfg.get("insecure_ssl").cloned().unwrap_or(json!("0")),
                });
            }
            if let Some(events) = body.get("events") {
                hook["events"] = events.clone();
            }
            if let Some(active) = body.get("active").and_then(Value::as_bool) {
                hook["active"] = json!(active);
            }
            reply(200, hook.clone())
        }
        _ => reply(404, json!({"message": "Not Found"})),
    }
}
