//! The GitHub REST client (octocrab), for upstreams or mirrors hosted on GitHub.
//!
//! Uses octocrab's generic `get`/`patch`/`post` with canon's own lenient response types, so a
//! field GitHub adds or drops never breaks a sync. Pages are `per_page=100`; a short page ends a
//! list (GitHub honours `per_page` up to 100).

use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    seg, split_repo, status_hint, CloseOutcome, Forge, ForgeError, ForgeKind, ForgeTag, Hook,
    HookSpec, PullRequest, RawHook, RawPull, CONNECT_TIMEOUT, REQUEST_TIMEOUT,
};
use crate::commit::CommitId;
use crate::secret::Secret;

const PAGE: usize = 100;
const MAX_PAGES: usize = 1000;

/// A GitHub API client.
#[derive(Clone)]
pub struct GitHub {
    client: Octocrab,
    token: Option<Secret>,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("token", &self.token)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawObject {
    #[serde(rename = "type", default)]
    kind: String,
    sha: String,
}

#[derive(Deserialize)]
struct RawRef {
    object: RawObject,
}

#[derive(Deserialize)]
struct RawTagObject {
    object: RawObject,
}

#[derive(Deserialize)]
struct RawCommitRef {
    sha: CommitId,
}

#[derive(Deserialize)]
struct RawTag {
    name: String,
    commit: RawCommitRef,
}

#[derive(Serialize)]
struct PageQuery<'a> {
    per_page: usize,
    page: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
}

impl GitHub {
    /// Returns a client for the API at `base_url` (`https://api.github.com`; `https://github.com`
    /// is mapped to it), authenticated by `token` when given.
    pub fn new(base_url: &str, token: Option<Secret>) -> Result<Self, ForgeError> {
        let bad = |message: String| ForgeError::BadBaseUrl {
            url: base_url.to_string(),
            message,
        };
        let parsed = url::Url::parse(base_url).map_err(|e| bad(e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("credentials belong in the token, not in the URL".into()));
        }
        let base = if parsed.host_str() == Some("github.com") {
            "https://api.github.com".to_string()
        } else {
            base_url.trim_end_matches('/').to_string()
        };
        let token = token.filter(|t| !t.is_empty());
        // The same deadlines as the Gitea client: a forge that hangs fails the call, it never
        // holds a worker.
        let mut builder = Octocrab::builder()
            .base_uri(base.as_str())
            .map_err(|e| bad(e.to_string()))?
            .set_connect_timeout(Some(CONNECT_TIMEOUT))
            .set_read_timeout(Some(REQUEST_TIMEOUT))
            .set_write_timeout(Some(REQUEST_TIMEOUT));
        if let Some(t) = &token {
            builder = builder.personal_token(t.expose().to_string());
        }
        let client = builder.build().map_err(|e| bad(e.to_string()))?;
        Ok(Self { client, token })
    }

    fn error(&self, method: &'static str, endpoint: &str, e: octocrab::Error) -> ForgeError {
        let scrub = |s: String| match &self.token {
            Some(t) => t.redact(&s),
            None => s,
        };
        match e {
            octocrab::Error::GitHub { source, .. } => {
                let status = source.status_code.as_u16();
                ForgeError::Status {
                    method,
                    endpoint: endpoint.to_string(),
                    status,
                    hint: status_hint(status),
                    message: scrub(source.message.chars().take(300).collect()),
                }
            }
            octocrab::Error::Serde { source, .. } => ForgeError::Decode {
                method,
                endpoint: endpoint.to_string(),
                message: source.to_string(),
            },
            octocrab::Error::Json { source, .. } => ForgeError::Decode {
                method,
                endpoint: endpoint.to_string(),
                message: source.to_string(),
            },
            other => ForgeError::Transport {
                method,
                endpoint: endpoint.to_string(),
                message: scrub(other.to_string()),
            },
        }
    }

    async fn get<T: DeserializeOwned>(&self, route: &str) -> Result<T, ForgeError> {
        self.client
            .get::<T, _, ()>(route, None)
            .await
            .map_err(|e| self.error("GET", route, e))
    }

    async fn get_all<T: DeserializeOwned>(
        &self,
        route: &str,
        state: Option<&str>,
    ) -> Result<Vec<T>, ForgeError> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let q = PageQuery {
                per_page: PAGE,
                page,
                state,
            };
            let items: Vec<Option<T>> = self
                .client
                .get(route, Some(&q))
                .await
                .map_err(|e| self.error("GET", route, e))?;
            let n = items.len();
            out.extend(items.into_iter().flatten());
            if n < PAGE {
                break;
            }
        }
        Ok(out)
    }
}

fn is_not_found(e: &ForgeError) -> bool {
    e.status() == Some(404)
}

#[async_trait::async_trait]
impl Forge for GitHub {
    fn kind(&self) -> ForgeKind {
        ForgeKind::GitHub
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<CommitId>, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let route = format!("/repos/{}/{}/git/ref/tags/{}", seg(o), seg(r), seg(tag));
        let mut object = match self.get::<RawRef>(&route).await {
            Ok(r) => r.object,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        // Annotated tags point to tag objects; follow them (a tag of a tag is possible).
        for _ in 0..8 {
            if object.kind != "tag" {
                return CommitId::parse(&object.sha)
                    .map(Some)
                    .map_err(|e| ForgeError::Decode {
                        method: "GET",
                        endpoint: route,
                        message: e.to_string(),
                    });
            }
            let route = format!("/repos/{}/{}/git/tags/{}", seg(o), seg(r), object.sha);
            object = self.get::<RawTagObject>(&route).await?.object;
        }
        Err(ForgeError::Decode {
            method: "GET",
            endpoint: route,
            message: "tag chain too deep".into(),
        })
    }

    async fn list_tags(&self, repo: &str) -> Result<Vec<ForgeTag>, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let route = format!("/repos/{}/{}/tags", seg(o), seg(r));
        let raw: Vec<RawTag> = self.get_all(&route, None).await?;
        Ok(raw
            .into_iter()
            .map(|t| ForgeTag {
                name: t.name,
                commit: t.commit.sha,
            })
            .collect())
    }

    async fn list_open_prs(&self, repo: &str) -> Result<Vec<PullRequest>, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let route = format!("/repos/{}/{}/pulls", seg(o), seg(r));
        let raw: Vec<RawPull> = self.get_all(&route, Some("open")).await?;
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
        let route = format!("/repos/{}/{}/pulls/{number}", seg(o), seg(r));
        let current: RawPull = self.get(&route).await?;
        if current.is_merged() {
            return Ok(CloseOutcome::AlreadyMerged);
        }
        if current.state == "closed" {
            return Ok(CloseOutcome::AlreadyClosed);
        }
        let body = serde_json::json!({ "state": "closed" });
        let _: serde_json::Value = self
            .client
            .patch(&route, Some(&body))
            .await
            .map_err(|e| self.error("PATCH", &route, e))?;
        let croute = format!("/repos/{}/{}/issues/{number}/comments", seg(o), seg(r));
        let body = serde_json::json!({ "body": comment });
        let _: serde_json::Value = self
            .client
            .post(&croute, Some(&body))
            .await
            .map_err(|e| self.error("POST", &croute, e))?;
        Ok(CloseOutcome::Closed)
    }

    async fn list_hooks(&self, repo: &str) -> Result<Vec<Hook>, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let route = format!("/repos/{}/{}/hooks", seg(o), seg(r));
        let raw: Vec<RawHook> = self.get_all(&route, None).await?;
        Ok(raw.into_iter().map(Hook::from).collect())
    }

    async fn create_hook(&self, repo: &str, spec: &HookSpec) -> Result<Hook, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let route = format!("/repos/{}/{}/hooks", seg(o), seg(r));
        let mut body = hook_body(spec);
        body["name"] = "web".into();
        let raw: RawHook = self
            .client
            .post(&route, Some(&body))
            .await
            .map_err(|e| self.error("POST", &route, e).without_secret(&spec.secret))?;
        Ok(raw.into())
    }

    async fn edit_hook(&self, repo: &str, id: u64, spec: &HookSpec) -> Result<Hook, ForgeError> {
        let (o, r) = split_repo(repo)?;
        let route = format!("/repos/{}/{}/hooks/{id}", seg(o), seg(r));
        // GitHub replaces `config` as a whole: a config sent without the secret removes it.
        let raw: RawHook = self
            .client
            .patch(&route, Some(&hook_body(spec)))
            .await
            .map_err(|e| self.error("PATCH", &route, e).without_secret(&spec.secret))?;
        Ok(raw.into())
    }
}

/// The body of a hook creation or edit: active, the events, the config (TLS verified).
fn hook_body(spec: &HookSpec) -> serde_json::Value {
    let mut config = spec.config_json();
    config["insecure_ssl"] = "0".into();
    serde_json::json!({
        "active": true,
        "events": spec.events,
        "config": config,
    })
}
