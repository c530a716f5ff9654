//! Forge stand-ins on loopback: one answering in the shapes of Gitea/Forgejo's API (`gitea.rs`),
//! one in GitHub's (`github.rs`). Both serve one in-memory repository, [`ForgeState`], which
//! tests set up before and inspect after; both record every request.
//!
//! What the shapes share lives here: the state, the server, paging and the comment route.

mod gitea;
mod github;

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::loopback::{respond_json, LoopbackServer, Request};

/// A PR the stand-in holds.
#[derive(Debug, Clone)]
pub struct FakePr {
    /// The PR number.
    pub number: u64,
    /// The commit at the PR's head.
    pub head_sha: String,
    /// The PR's branch.
    pub head_ref: String,
    /// `open` or `closed`.
    pub state: String,
    /// Whether the forge counts it as merged.
    pub merged: bool,
    /// Answer 412 to the close (Gitea's "already merged" after its own detection).
    pub reject_412: bool,
    /// Render as `null` in lists (Forgejo's PR that failed to load).
    pub broken: bool,
}

impl FakePr {
    /// Returns an open PR from branch `pr-<number>` at `head_sha`.
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

/// A tag the stand-in holds.
#[derive(Debug, Clone)]
pub struct FakeTag {
    /// The tag name.
    pub name: String,
    /// The tag object for an annotated tag, else the commit.
    pub object: String,
    /// The commit the tag peels to.
    pub commit: String,
}

/// The repository a forge stand-in serves, and what was done to it.
#[derive(Debug, Clone)]
pub struct ForgeState {
    /// The token every request must carry.
    pub token: String,
    /// `owner/name` of the only repository.
    pub repo: String,
    /// The repository's PRs.
    pub prs: Vec<FakePr>,
    /// Comments posted, as `(issue number, body)`.
    pub comments: Vec<(u64, String)>,
    /// The repository's tags.
    pub tags: Vec<FakeTag>,
    /// The repository's webhooks, as the forge renders them.
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

    /// Records the comment in `req`'s body on issue `number` and answers like both forges do.
    fn comment(&mut self, number: &str, req: &Request) -> Reply {
        let text = req.json()["body"].as_str().unwrap_or("").to_string();
        self.comments
            .push((number.parse().unwrap_or(0), text.clone()));
        reply(201, json!({"id": self.comments.len(), "body": text}))
    }

    /// Returns the PR numbered `number` (as in a path).
    fn pr_mut(&mut self, number: &str) -> Option<&mut FakePr> {
        self.prs.iter_mut().find(|p| p.number.to_string() == number)
    }

    /// Returns the PRs a `state=` query selects (`open` when absent, `all` for every one).
    fn prs_in(&self, req: &Request) -> impl Iterator<Item = &FakePr> {
        let state = req.query_param("state").unwrap_or_else(|| "open".into());
        self.prs
            .iter()
            .filter(move |p| state == "all" || p.state == state)
    }
}

/// Which API shape a forge stand-in speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Gitea/Forgejo: `/api/v1`, `Authorization: token`, `limit` clamped to `max_items`,
    /// `X-Total-Count`, optional `null` list items, 412 on closing a merged PR.
    Gitea,
    /// GitHub: `per_page`, Bearer tokens, git refs and tag objects.
    GitHub,
}

/// A running forge stand-in; stopped on drop.
pub struct FakeForge {
    /// The repository it serves; tests change and inspect it.
    pub state: Arc<Mutex<ForgeState>>,
    log: Arc<Mutex<Vec<Request>>>,
    server: LoopbackServer,
}

impl FakeForge {
    /// Starts a stand-in of `shape` serving `state`.
    pub fn start(shape: Shape, state: ForgeState) -> Self {
        let state = Arc::new(Mutex::new(state));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (st, lg) = (state.clone(), log.clone());
        let server = LoopbackServer::start(move |mut req| {
            let seen = Request::read(&mut req);
            lg.lock().unwrap().push(seen.clone());
            let r = {
                let mut s = st.lock().unwrap();
                match shape {
                    Shape::Gitea => gitea::answer(&mut s, &seen),
                    Shape::GitHub => github::answer(&mut s, &seen),
                }
            };
            respond_json(req, r.status, &r.body, &r.headers);
        });
        Self { state, log, server }
    }

    /// Returns the base URL (`http://127.0.0.1:<port>`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Returns every request received, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

/// An answer: status, JSON body, extra headers.
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

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Splits `<prefix>/repos/{o}/{r}/rest`; returns (`o/r`, the rest's segments decoded).
fn route(path: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let rest = path.strip_prefix(prefix)?.strip_prefix("/repos/")?;
    let mut parts = rest.split('/');
    let owner = decode(parts.next()?);
    let name = decode(parts.next()?);
    Some((format!("{owner}/{name}"), parts.map(decode).collect()))
}

/// Returns page `page` (from 1) of `items` in pages of `size`.
fn page<T: Clone>(items: &[T], page: usize, size: usize) -> Vec<T> {
    items
        .iter()
        .skip((page.max(1) - 1) * size)
        .take(size)
        .cloned()
        .collect()
}

/// Returns the `page=` of `req`, 1 when absent.
fn page_number(req: &Request) -> usize {
    req.query_param("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
}
