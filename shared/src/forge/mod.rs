//! Forge clients behind one small, object-safe trait: Gitea/Forgejo ([`gitea::Gitea`], reqwest)
//! and GitHub ([`github::GitHub`], octocrab).
//!
//! canon needs few operations from a forge: resolve a tag to its commit, list tags, list open
//! PRs, close a PR with a comment, and list, create or repair repository webhooks (for setting up
//! the listener). The listener holds an `Arc<dyn Forge>`, so the trait uses `async_trait`.
//!
//! Errors name the method, the endpoint and the status, never the token; a 404 says it may mean
//! missing permission, because that is how Gitea and GitHub answer a token that cannot see a
//! repository.

pub mod gitea;
pub mod github;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long connecting to a forge may take, for every client.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one forge request may take (or, for GitHub, send or receive nothing), for every client.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

use crate::commit::CommitId;
use crate::secret::Secret;

pub use gitea::Gitea;
pub use github::GitHub;

/// The events canon's webhook listens to.
pub const HOOK_EVENTS: [&str; 4] = ["push", "create", "release", "delete"];

/// A tag as a forge lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForgeTag {
    /// The tag name.
    pub name: String,
    /// The commit the tag peels to.
    pub commit: CommitId,
}

/// An open pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    /// The PR number (shared with issues on Gitea).
    pub number: u64,
    /// The head commit.
    pub head_sha: String,
    /// The head branch name.
    pub head_ref: String,
    /// The base branch name.
    pub base_ref: String,
    /// The title.
    pub title: String,
    /// The web URL, when given.
    pub html_url: Option<String>,
}

/// A branch end of a pull request, as Gitea, Forgejo and GitHub all serialise it.
#[derive(Deserialize, Default)]
pub(crate) struct RawBranchRef {
    #[serde(default, rename = "ref")]
    name: String,
    #[serde(default)]
    sha: String,
}

/// A webhook's config as Gitea, Forgejo and GitHub all serialise it (the fields canon reads;
/// the secret is never readable).
#[derive(Deserialize)]
pub(crate) struct RawHookConfig {
    #[serde(default)]
    url: String,
    #[serde(default)]
    content_type: Option<String>,
}

/// A repository webhook as Gitea, Forgejo and GitHub all serialise it.
#[derive(Deserialize)]
pub(crate) struct RawHook {
    id: u64,
    #[serde(default)]
    config: Option<RawHookConfig>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    active: bool,
}

impl HookSpec {
    /// Returns the hook's `config` as Gitea, Forgejo and GitHub all take it.
    pub(crate) fn config_json(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.url,
            "content_type": "json",
            "secret": self.secret.expose(),
        })
    }
}

impl From<RawHook> for Hook {
    fn from(h: RawHook) -> Self {
        let (url, content_type) = h
            .config
            .map(|c| (c.url, c.content_type))
            .unwrap_or_default();
        Hook {
            id: h.id,
            url,
            content_type,
            events: h.events,
            active: h.active,
        }
    }
}

/// A pull request as Gitea, Forgejo and GitHub all serialise it (the fields canon reads).
#[derive(Deserialize)]
pub(crate) struct RawPull {
    number: u64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    state: String,
    /// Gitea always sends it; GitHub only on a single PR, and may send `null`.
    #[serde(default)]
    merged: Option<bool>,
    #[serde(default)]
    merged_at: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    head: Option<RawBranchRef>,
    base: Option<RawBranchRef>,
}

impl RawPull {
    /// Returns true while the PR is open (a missing state counts as open, as listed).
    pub(crate) fn is_open(&self) -> bool {
        self.state.is_empty() || self.state == "open"
    }

    /// Returns true once the forge says the PR was merged.
    pub(crate) fn is_merged(&self) -> bool {
        self.merged == Some(true) || self.merged_at.is_some()
    }

    /// Returns the PR as canon carries it.
    pub(crate) fn into_pull_request(self) -> PullRequest {
        let head = self.head.unwrap_or_default();
        PullRequest {
            number: self.number,
            head_sha: head.sha,
            head_ref: head.name,
            base_ref: self.base.map(|b| b.name).unwrap_or_default(),
            title: self.title,
            html_url: self.html_url,
        }
    }
}

/// What closing a PR did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseOutcome {
    /// The PR was open; it is now closed and commented.
    Closed,
    /// The forge already had it merged (Gitea's 412, or its own manual-merge detection).
    AlreadyMerged,
    /// It was already closed.
    AlreadyClosed,
}

/// A repository webhook as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// The forge's hook id.
    pub id: u64,
    /// The delivery URL.
    pub url: String,
    /// `json` or `form` (Gitea) / `json` or `form` (GitHub), when given.
    pub content_type: Option<String>,
    /// The events it fires for.
    pub events: Vec<String>,
    /// Whether it is active.
    pub active: bool,
}

/// A webhook to create or repair: JSON content, a secret, canon's events, active.
#[derive(Debug, Clone)]
pub struct HookSpec {
    /// The delivery URL (the listener's webhook route).
    pub url: String,
    /// The HMAC secret.
    pub secret: Secret,
    /// The events (default [`HOOK_EVENTS`]).
    pub events: Vec<String>,
}

impl HookSpec {
    /// Returns a spec for canon's events.
    pub fn new(url: impl Into<String>, secret: Secret) -> Self {
        Self {
            url: url.into(),
            secret,
            events: HOOK_EVENTS.iter().map(|e| e.to_string()).collect(),
        }
    }
}

/// Which forge a repository lives on, as every crate names it.
///
/// Forgejo speaks Gitea's API (one client serves both) but is told apart from Gitea because the
/// listener records which one sent a webhook: the names [`ForgeKind::as_str`] returns are stored
/// in its journal and must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    /// Gitea (or Gogs), `/api/v1`.
    Gitea,
    /// Forgejo: Gitea's API, and `X-Forgejo-*` webhook headers besides Gitea's.
    Forgejo,
    /// GitHub or GitHub Enterprise.
    GitHub,
}

/// Why a name is not a forge kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown forge kind {shown} (expected gitea, forgejo or github)")]
pub struct UnknownForgeKind {
    shown: String,
}

impl ForgeKind {
    /// Guesses the kind from a base URL: `github.com` (and `api.github.com`) is GitHub, anything
    /// else Gitea/Forgejo (reported as Gitea: the API is the same).
    pub fn guess(base_url: &str) -> Self {
        let host = url::Url::parse(base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        match host.as_deref() {
            Some("github.com") | Some("api.github.com") => ForgeKind::GitHub,
            _ => ForgeKind::Gitea,
        }
    }

    /// Returns the lower-case name: `gitea`, `forgejo` or `github` (what the listener's journal
    /// stores and its API shows).
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Gitea => "gitea",
            ForgeKind::Forgejo => "forgejo",
            ForgeKind::GitHub => "github",
        }
    }
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ForgeKind {
    type Err = UnknownForgeKind;

    /// Parses the names [`ForgeKind::as_str`] returns, exactly.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gitea" => Ok(ForgeKind::Gitea),
            "forgejo" => Ok(ForgeKind::Forgejo),
            "github" => Ok(ForgeKind::GitHub),
            other => Err(UnknownForgeKind {
                // Debug formatting escapes control characters, so the message stays one line.
                shown: format!("{:?}", other.chars().take(40).collect::<String>()),
            }),
        }
    }
}

/// Why a forge call failed. Never holds the token.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("{method} {endpoint}: HTTP {status}{hint}: {message}")]
    Status {
        method: &'static str,
        endpoint: String,
        status: u16,
        /// Extra help for the status (404 may mean no permission).
        hint: &'static str,
        /// The server's message, shortened, token removed.
        message: String,
    },
    #[error("{method} {endpoint}: request failed: {message}")]
    Transport {
        method: &'static str,
        endpoint: String,
        message: String,
    },
    #[error("{method} {endpoint}: unexpected response: {message}")]
    Decode {
        method: &'static str,
        endpoint: String,
        message: String,
    },
    #[error("invalid repository {repo:?}: expected `owner/name`")]
    BadRepo { repo: String },
    #[error("invalid forge base URL {url:?}: {message}")]
    BadBaseUrl { url: String, message: String },
}

impl ForgeError {
    /// Returns the error with `secret` removed from the forge's message (a webhook call sends
    /// the hook's secret; no forge is known to echo it, but an error must never carry it).
    pub(crate) fn without_secret(mut self, secret: &Secret) -> Self {
        if let ForgeError::Status { message, .. } = &mut self {
            *message = secret.redact(message);
        }
        self
    }

    /// Returns the HTTP status, when the forge answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ForgeError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Returns the hint added to an error message for `status`.
pub(crate) fn status_hint(status: u16) -> &'static str {
    match status {
        401 => " (the token is missing, wrong or expired)",
        403 => " (the token lacks a scope or permission)",
        404 => " (not found: the repository or item may not exist, or the token may lack permission to see it)",
        _ => "",
    }
}

/// Shortens a server message for an error and removes the token from it.
pub(crate) fn excerpt(text: &str, token: Option<&Secret>) -> String {
    let msg = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.trim().to_string());
    let mut short: String = msg.chars().take(300).collect();
    if msg.chars().count() > 300 {
        short.push('…');
    }
    match token {
        Some(t) => t.redact(&short),
        None => short,
    }
}

/// Splits `owner/name`.
pub(crate) fn split_repo(repo: &str) -> Result<(&str, &str), ForgeError> {
    let bad = || ForgeError::BadRepo {
        repo: repo.to_string(),
    };
    let (owner, name) = repo.trim_matches('/').split_once('/').ok_or_else(bad)?;
    let ok = |s: &str| !s.is_empty() && !s.contains('/') && s != "." && s != "..";
    if ok(owner) && ok(name) {
        Ok((owner, name.trim_end_matches(".git")))
    } else {
        Err(bad())
    }
}

/// Percent-encodes one path segment (tag names may hold `+`, `/`).
pub(crate) fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The operations canon needs from a forge. `repo` is always `owner/name`.
#[async_trait::async_trait]
pub trait Forge: Send + Sync {
    /// Returns which API this is.
    fn kind(&self) -> ForgeKind;

    /// Returns the commit tag `tag` peels to, or `None` when the tag does not exist.
    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<CommitId>, ForgeError>;

    /// Returns every tag with its peeled commit (all pages).
    async fn list_tags(&self, repo: &str) -> Result<Vec<ForgeTag>, ForgeError>;

    /// Returns every open PR (all pages; `null` items skipped).
    async fn list_open_prs(&self, repo: &str) -> Result<Vec<PullRequest>, ForgeError>;

    /// Closes PR `number`, then posts `comment` on it. Already merged or closed is a no-op.
    async fn close_pr(
        &self,
        repo: &str,
        number: u64,
        comment: &str,
    ) -> Result<CloseOutcome, ForgeError>;

    /// Returns the repository's webhooks (all pages).
    async fn list_hooks(&self, repo: &str) -> Result<Vec<Hook>, ForgeError>;

    /// Creates an active JSON webhook with a secret.
    async fn create_hook(&self, repo: &str, spec: &HookSpec) -> Result<Hook, ForgeError>;

    /// Rewrites hook `id` in place as an active JSON webhook for `spec`'s URL and events, and
    /// sends `spec`'s secret with it (GitHub replaces the secret; Gitea and Forgejo keep the one
    /// the hook already has). Returns the hook as the forge now lists it.
    async fn edit_hook(&self, repo: &str, id: u64, spec: &HookSpec) -> Result<Hook, ForgeError>;
}

/// Returns a client for `kind` at `base_url` (web or API base), authenticated by `token`.
pub fn client(
    kind: ForgeKind,
    base_url: &str,
    token: Option<Secret>,
) -> Result<Arc<dyn Forge>, ForgeError> {
    Ok(match kind {
        ForgeKind::Gitea | ForgeKind::Forgejo => Arc::new(Gitea::new(base_url, token)?),
        ForgeKind::GitHub => Arc::new(GitHub::new(base_url, token)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_split_into_owner_and_name() {
        assert_eq!(
            split_repo("coop-cloud/gitea").unwrap(),
            ("coop-cloud", "gitea")
        );
        assert_eq!(split_repo("o/r.git").unwrap(), ("o", "r"));
        assert!(split_repo("justone").is_err());
        assert!(split_repo("a/b/c").is_err());
        assert!(split_repo("../x").is_err());
    }

    #[test]
    fn github_is_guessed_from_its_host() {
        assert_eq!(ForgeKind::guess("https://github.com"), ForgeKind::GitHub);
        assert_eq!(
            ForgeKind::guess("https://api.github.com/"),
            ForgeKind::GitHub
        );
        assert_eq!(
            ForgeKind::guess("https://git.coopcloud.tech"),
            ForgeKind::Gitea
        );
    }

    #[test]
    fn forge_kinds_keep_the_names_the_journal_stores() {
        let table = [
            (ForgeKind::Gitea, "gitea"),
            (ForgeKind::Forgejo, "forgejo"),
            (ForgeKind::GitHub, "github"),
        ];
        for (kind, name) in table {
            assert_eq!(kind.as_str(), name);
            assert_eq!(kind.to_string(), name);
            assert_eq!(name.parse::<ForgeKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
            assert_eq!(
                serde_json::from_value::<ForgeKind>(serde_json::json!(name)).unwrap(),
                kind
            );
        }
    }

    #[test]
    fn unknown_forge_kinds_are_refused_by_name() {
        for bad in ["GitHub", "Gitea", "gogs", "", "git\nhub"] {
            let e = bad.parse::<ForgeKind>().unwrap_err().to_string();
            assert!(e.starts_with("unknown forge kind"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn excerpts_drop_the_token() {
        let t = Secret::new("tok123");
        assert_eq!(excerpt(r#"{"message":"bad tok123"}"#, Some(&t)), "bad ***");
        assert_eq!(excerpt("plain", None), "plain");
    }
}
