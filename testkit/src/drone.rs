//! The Drone stand-in: a loopback server answering Drone's build API the way canon uses it.
//!
//! - `POST /api/repos/{owner}/{name}/builds?branch=..&K=V..` creates a pending custom build whose
//!   parameters are every query pair but `branch`, decoded the way Drone's Go server decodes a
//!   query (a `+` is a space: a client must send `%2B`).
//! - `GET /api/repos/{owner}/{name}/builds?page=..&per_page=..` lists builds newest first.
//!
//! Every call must carry `Authorization: Bearer` [`TOKEN`], else it gets a 401. Failure
//! injection: [`FakeDrone::fail_next_creates`] (500 "database is locked"),
//! [`FakeDrone::force_status`] (every call), [`FakeDrone::answer_null`] (a create answered with
//! `null`: no pipeline matched). Every request is recorded, also the refused ones.

use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::loopback::{respond_json, LoopbackServer, Request};

/// The Drone token the stand-in accepts.
pub const TOKEN: &str = "drone-token";

/// Builds per page when a list call names none.
const DEFAULT_PER_PAGE: usize = 25;

/// A running Drone stand-in; stopped on drop.
pub struct FakeDrone {
    inner: Arc<Mutex<Inner>>,
    server: LoopbackServer,
}

#[derive(Default)]
struct Inner {
    /// Oldest first.
    builds: Vec<Value>,
    requests: Vec<Request>,
    fail_creates: u32,
    /// The message failed creates answer with (default "database is locked").
    failure_message: Option<String>,
    force_status: Option<u16>,
    answer_null: bool,
}

impl FakeDrone {
    /// Starts the stand-in with no builds.
    pub fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = inner.clone();
        let server = LoopbackServer::start(move |mut req| {
            let seen = Request::read(&mut req);
            let (status, body) = state.lock().unwrap().answer(seen);
            respond_json(req, status, &body, &[]);
        });
        Self { inner, server }
    }

    /// Returns the server URL (`http://127.0.0.1:<port>`), what canon's Drone settings take.
    pub fn url(&self) -> String {
        self.server.base_url()
    }

    /// Answers the next `n` creates with 500 (after recording them).
    pub fn fail_next_creates(&self, n: u32) {
        self.inner.lock().unwrap().fail_creates = n;
    }

    /// Answers the next `n` creates with 500 and `{"message": message}`.
    pub fn fail_next_creates_saying(&self, n: u32, message: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.fail_creates = n;
        inner.failure_message = Some(message.to_string());
    }

    /// Answers every call with `status` (`None`: answer normally again).
    pub fn force_status(&self, status: Option<u16>) {
        self.inner.lock().unwrap().force_status = status;
    }

    /// Answers every create with `null`, as Drone does when no pipeline matched.
    pub fn answer_null(&self, null: bool) {
        self.inner.lock().unwrap().answer_null = null;
    }

    /// Returns the builds created so far, oldest first.
    pub fn builds(&self) -> Vec<Value> {
        self.inner.lock().unwrap().builds.clone()
    }

    /// Returns every request received, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Returns every create call (`POST .../builds`) received, in order, whatever it was
    /// answered.
    pub fn creates(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/builds"))
            .collect()
    }

    /// Returns how many builds carry `CANON_RECIPE=recipe` and `CANON_TAG=tag`.
    pub fn count(&self, recipe: &str, tag: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .builds
            .iter()
            .filter(|b| b["params"]["CANON_RECIPE"] == recipe && b["params"]["CANON_TAG"] == tag)
            .count()
    }
}

impl Inner {
    fn answer(&mut self, req: Request) -> (u16, Value) {
        self.requests.push(req.clone());
        if req.authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
            return (401, json!({"message": "Unauthorized"}));
        }
        if let Some(status) = self.force_status {
            return (status, json!({"message": "forced"}));
        }
        let repo = req
            .path
            .strip_prefix("/api/repos/")
            .and_then(|r| r.strip_suffix("/builds"))
            .filter(|r| r.split('/').count() == 2);
        match (req.method.as_str(), repo) {
            ("POST", Some(repo)) => self.create(repo, &req.query),
            ("GET", Some(_)) => self.list(&req.query),
            _ => (404, json!({"message": "Not Found"})),
        }
    }

    fn create(&mut self, repo: &str, query: &str) -> (u16, Value) {
        if self.fail_creates > 0 {
            self.fail_creates -= 1;
            let message = self
                .failure_message
                .as_deref()
                .unwrap_or("database is locked");
            return (500, json!({ "message": message }));
        }
        if self.answer_null {
            return (200, Value::Null);
        }
        let params: Map<String, Value> = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k != "branch")
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        let number = self.builds.len() as u64 + 1;
        let build = json!({
            "id": number * 10, "number": number, "status": "pending", "event": "custom",
            "link": format!("http://drone.test/{repo}/{number}"), "params": params,
        });
        self.builds.push(build.clone());
        (200, build)
    }

    fn list(&self, query: &str) -> (u16, Value) {
        let param = |key: &str| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.parse::<usize>().ok())
        };
        let page = param("page").unwrap_or(1).max(1);
        let per_page = param("per_page").unwrap_or(DEFAULT_PER_PAGE);
        let newest_first = self
            .builds
            .iter()
            .rev()
            .skip((page - 1) * per_page)
            .take(per_page)
            .cloned()
            .collect();
        (200, Value::Array(newest_first))
    }
}
