//! The Gitea and Forgejo REST client (`/api/v1`, reqwest).
//!
//! Facts it follows (reference/gitea/NOTES.md, sections 3 and 7): `Authorization: token <T>`
//! (lowercase `token`, never a query token); pages are 1-based with `limit` silently clamped to
//! `MAX_RESPONSE_ITEMS` (default 50), so paging stops on `X-Total-Count` or an empty page, never on
//! "fewer than asked"; Forgejo lists may contain `null`; closing a PR is `PATCH {"state":"closed"}`
//! (201) and answers 412 when the PR is already merged; hooks need `active: true` explicitly, and
//! editing one (`PATCH .../hooks/{id}`) never changes its secret.

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{
    excerpt, seg, split_repo, status_hint, CloseOutcome, Forge, ForgeError, ForgeKind, ForgeTag,
    Hook, HookSpec, PullRequest, RawHook, RawPull,
};
use crate::commit::CommitId;
use crate::secret::Secret;

/// The page size asked for; the server may give fewer.
const PAGE: usize = 50;
/// A bound on pages followed, against a server that never ends a list.
const MAX_PAGES: usize = 2000;

/// A Gitea or Forgejo API client.
#[derive(Debug, Clone)]
pub struct Gitea {
    /// `<base>/api/v1`, no trailing slash.
    api: String,
    token: Option<Secret>,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct RawTag {
    name: String,
    #[serde(default)]
    commit: Option<RawCommitRef>,
}

#[derive(Deserialize)]
struct RawCommitRef {
    sha: CommitId,
}

impl Gitea {
    /// Returns a client for the forge at `base_url` (`https://git.example.org`, with or without
    /// `/api/v1`), authenticated by `token` when given.
    pub fn new(base_url: &str, token: Option<Secret>) -> Result<Self, ForgeError> {
        let bad = |message: String| ForgeError::BadBaseUrl {
            url: base_url.to_string(),
            message,
        };
        let parsed = url::Url::parse(base_url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("not an http(s) URL".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("credentials belong in the token, not in the URL".into()));
        }
        let base = base_url.trim_end_matches('/');
        let api = if base.ends_with("/api/v1") {
            base.to_string()
        } else {
            format!("{base}/api/v1")
        };
        let http = crate::http_client::client(super::CONNECT_TIMEOUT, super::REQUEST_TIMEOUT)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            api,
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    /// Sends one request; returns the status, the headers and the body text.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, String), ForgeError> {
        let name = method_name(&method);
        let mut req = self
            .http
            .request(method, format!("{}{}", self.api, path))
            .header("Accept", "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("token {}", t.expose()));
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| ForgeError::Transport {
            method: name,
            endpoint: path.to_string(),
            message: self.scrub(&without_url(&e)),
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| ForgeError::Transport {
            method: name,
            endpoint: path.to_string(),
            message: self.scrub(&without_url(&e)),
        })?;
        tracing::debug!(
            method = name,
            endpoint = path,
            status = status.as_u16(),
            "Forge call."
        );
        Ok((status, headers, text))
    }

    fn scrub(&self, s: &str) -> String {
        match &self.token {
            Some(t) => t.redact(s),
            None => s.to_string(),
        }
    }

    fn status_error(
        &self,
        method: &'static str,
        path: &str,
        status: StatusCode,
        text: &str,
    ) -> ForgeError {
        ForgeError::Status {
            method,
            endpoint: path.to_string(),
            status: status.as_u16(),
            hint: status_hint(status.as_u16()),
            message: excerpt(text, self.token.as_ref()),
        }
    }

    fn decode<T: DeserializeOwned>(
        method: &'static str,
        path: &str,
        text: &str,
    ) -> Result<T, ForgeError> {
        serde_json::from_str(text).map_err(|e| ForgeError::Decode {
            method,
            endpoint: path.to_string(),
            message: e.to_string(),
        })
    }

    /// GETs one JSON document; `Ok(None)` on 404 when `missing_ok`.
    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        missing_ok: bool,
    ) -> Result<Option<T>, ForgeError> {
        let (status, _, text) = self.send(Method::GET, path, &[], None).await?;
        if status == StatusCode::NOT_FOUND && missing_ok {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.status_error("GET", path, status, &text));
        }
        Self::decode("GET", path, &text).map(Some)
    }

    /// GETs every page of a list, skipping `null` items.
    async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        extra: &[(&str, String)],
    ) -> Result<Vec<T>, ForgeError> {
        let mut out = Vec::new();
        let mut seen = 0usize;
        for page in 1..=MAX_PAGES {
            let mut query: Vec<(&str, String)> = extra.to_vec();
            query.push(("page", page.to_string()));
            query.push(("limit", PAGE.to_string()));
            let (status, headers, text) = self.send(Method::GET, path, &query, None).await?;
            if !status.is_success() {
                return Err(self.status_error("GET", path, status, &text));
            }
            let items: Vec<Option<T>> = Self::decode("GET", path, &text)?;
            let n = items.len();
            seen += n;
            out.extend(items.into_iter().flatten());
            let total = headers
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            let has_next = headers
                .get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("rel=\"next\""));
            let done = match total {
                Some(total) => n == 0 || seen >= total,
                // Without a total, a Link header tells; without either, read until an empty page
                // (the server may clamp `limit`, so a short page proves nothing).
                None if headers.contains_key("link") => n == 0 || !has_next,
                None => n == 0,
            };
            if done {
                return Ok(out);
            }
        }
        Ok(out)
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        _ => "HTTP",
    }
}

/// Formats a reqwest error without its URL (the endpoint is named separately).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(u) = e.url() {
        msg = msg.replace(u.as_str(), "");
        msg = msg.replace(" ()", "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[async_trait::async_trait]
impl Forge for Gitea {
    fn kind(&self) -> ForgeKind {
        ForgeKind::Gitea
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<CommitId>, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let path = format!("/repos/{}/{}/tags/{}", seg(o), seg(r), seg(tag));
        let raw: Option<RawTag> = self.get_json(&path, true).await?;
        Ok(raw.and_then(|t| t.commit.map(|c| c.sha)))
    }

    async fn list_tags(&self, repo: &str) -> Result<Vec<ForgeTag>, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let path = format!("/repos/{}/{}/tags", seg(o), seg(r));
        let raw: Vec<RawTag> = self.get_all(&path, &[]).await?;
        Ok(raw
            .into_iter()
            .filter_map(|t| {
                t.commit.map(|c| ForgeTag {
                    name: t.name,
                    commit: c.sha,
                })
            })
            .collect())
    }

    async fn list_open_prs(&self, repo: &str) -> Result<Vec<PullRequest>, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let path = format!("/repos/{}/{}/pulls", seg(o), seg(r));
        let raw: Vec<RawPull> = self
            .get_all(&path, &[("state", "open".to_string())])
            .await?;
        Ok(raw
            .into_iter()
            .filter(RawPull::is_open)
            .map(RawPull::into_pull_request)
            .collect())
    }

    async fn close_pr(
        &self,
        repo: &str,
        number: u64,
        comment: &str,
    ) -> Result<CloseOutcome, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let path = format!("/repos/{}/{}/pulls/{number}", seg(o), seg(r));
        let current: Option<RawPull> = self.get_json(&path, false).await?;
        if let Some(p) = current {
            if p.is_merged() {
                return Ok(CloseOutcome::AlreadyMerged);
            }
            if p.state == "closed" {
                return Ok(CloseOutcome::AlreadyClosed);
            }
        }
        let body = serde_json::json!({ "state": "closed" });
        let (status, _, text) = self.send(Method::PATCH, &path, &[], Some(&body)).await?;
        if status == StatusCode::PRECONDITION_FAILED {
            // Gitea: "cannot change state of this pull request, it was already merged" (it may
            // detect the merge by itself after our push).
            return Ok(CloseOutcome::AlreadyMerged);
        }
        if !status.is_success() {
            return Err(self.status_error("PATCH", &path, status, &text));
        }
        let cpath = format!("/repos/{}/{}/issues/{number}/comments", seg(o), seg(r));
        let body = serde_json::json!({ "body": comment });
        let (status, _, text) = self.send(Method::POST, &cpath, &[], Some(&body)).await?;
        if !status.is_success() {
            return Err(self.status_error("POST", &cpath, status, &text));
        }
        Ok(CloseOutcome::Closed)
    }

    async fn list_hooks(&self, repo: &str) -> Result<Vec<Hook>, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let path = format!("/repos/{}/{}/hooks", seg(o), seg(r));
        let raw: Vec<RawHook> = self.get_all(&path, &[]).await?;
        Ok(raw.into_iter().map(Hook::from).collect())
    }

    async fn create_hook(&self, repo: &str, spec: &HookSpec) -> Result<Hook, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let path = format!("/repos/{}/{}/hooks", seg(o), seg(r));
        let mut body = hook_body(spec);
        body["type"] = "gitea".into();
        self.write_hook(Method::POST, &path, &body, spec).await
    }

    async fn edit_hook(&self, repo: &str, id: u64, spec: &HookSpec) -> Result<Hook, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let path = format!("/repos/{}/{}/hooks/{id}", seg(o), seg(r));
        // `EditHookOption`: Gitea replaces the events and the branch filter on every edit, sets
        // `active` only when sent, and reads `url` and `content_type` from the config; it keeps
        // the stored secret (sent anyway for a forge that honours it).
        self.write_hook(Method::PATCH, &path, &hook_body(spec), spec)
            .await
    }
}

/// The body of a hook creation or edit: the config, the events, active, no branch filter.
fn hook_body(spec: &HookSpec) -> serde_json::Value {
    serde_json::json!({
        "config": spec.config_json(),
        "events": spec.events,
        "active": true,
        "branch_filter": "",
    })
}

impl Gitea {
    /// Sends a hook creation or edit and returns the hook the forge answers with.
    async fn write_hook(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
        spec: &HookSpec,
    ) -> Result<Hook, ForgeError> {
        let verb = if method == Method::POST {
            "POST"
        } else {
            "PATCH"
        };
        let (status, _, text) = self.send(method, path, &[], Some(body)).await?;
        if !status.is_success() {
            return Err(self
                .status_error(verb, path, status, &text)
                .without_secret(&spec.secret));
        }
        let raw: RawHook = Self::decode(verb, path, &text)?;
        Ok(raw.into())
    }
}
