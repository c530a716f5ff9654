//! The listener's HTTP API as the other crates read it: the answer types and a small client.
//!
//! The types here are the contract. The listener serialises them and the sweep deserialises them,
//! so the listener's own tests run [`job_for`] against a real listener: if either side changes the
//! shape, that test fails instead of the weekly sweep.
//!
//! One question is asked today: "do you have a job for this recipe and tag?" It answers whether a
//! webhook announced the tag, which is how the sweep tells a missed webhook from one that arrived.
//!
//! - `GET {base}/api/recipes/{recipe}/tags/{tag}/job` answers `200 {"job": {..}}` with the newest
//!   job for the pair, or `404 {"job": null}` when there is none. A 404 without that body, or a
//!   405 (how the listener answers a GET on a path it does not route), is a listener that does not
//!   offer the question (or not a listener): reported as an error rather than as "no job", so a
//!   sweep against it counts no missed webhooks by mistake.
//! - Answers never carry error text or URLs: the job's error may quote a remote URL.
//!
//! The base URL may carry a user name and password (a listener behind a proxy with basic auth);
//! they are sent as basic auth and removed from every URL an error shows. A listener with an
//! admin token (`CANON_ADMIN_TOKEN`) wants it as a bearer token: [`ListenerClient::with_token`]
//! sends it instead of the basic auth, and it never appears in an error.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::commit::CommitId;
use crate::forge::ForgeKind;
use crate::recipe::RecipeName;
use crate::secret::Secret;

/// How long connecting to the listener may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one whole request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of an unexpected answer an error quotes.
const EXCERPT_CHARS: usize = 200;

/// A tag job's state, as the listener's journal stores it and its API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its first attempt.
    Queued,
    /// Claimed by a worker (or interrupted by a crash, and run again at start).
    Running,
    /// Failed, waiting for its next attempt.
    Retrying,
    /// A build was started (or found already started).
    Done,
    /// Not built, by decision (older than the canonical, already canonical).
    Skipped,
    /// Failed for good: out of attempts, or a failure retrying cannot fix.
    Failed,
}

/// Why a name is not a job state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state {shown}")]
pub struct UnknownJobState {
    shown: String,
}

impl JobState {
    /// Returns the name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Done => "done",
            JobState::Skipped => "skipped",
            JobState::Failed => "failed",
        }
    }

    /// Returns true for states a job never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Done | JobState::Skipped | JobState::Failed)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = UnknownJobState;

    /// Parses the names [`JobState::as_str`] returns, exactly.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "retrying" => JobState::Retrying,
            "done" => JobState::Done,
            "skipped" => JobState::Skipped,
            "failed" => JobState::Failed,
            other => {
                return Err(UnknownJobState {
                    // Debug formatting escapes control characters, so the message stays one line.
                    shown: format!("{:?}", other.chars().take(40).collect::<String>()),
                });
            }
        })
    }
}

/// What the listener knows of one tag job: enough to tell whether a webhook announced the tag
/// and how far it got. No error text and no URLs, which may quote a remote with credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The listener's job id (as in `/api/jobs`).
    pub id: i64,
    /// The enrolled recipe the tag's repository maps to.
    pub recipe: RecipeName,
    /// The release tag.
    pub tag: String,
    /// The forge that sent the webhook.
    pub forge: ForgeKind,
    /// The repository as the webhook named it, `owner/name`.
    pub repo: String,
    /// How far the job got.
    pub state: JobState,
    /// The commit the tag resolved to at the forge (or, before that, the payload's hint).
    pub commit: Option<CommitId>,
    /// The Drone build number, once started.
    pub build: Option<u64>,
    /// Attempts so far.
    pub attempts: u32,
    /// When the first delivery for the tag arrived (RFC 3339, UTC).
    pub created_at: String,
    /// When the job last changed (RFC 3339, UTC).
    pub updated_at: String,
}

/// The body of `GET /api/recipes/{recipe}/tags/{tag}/job`: the job (with 200), or `null` (with
/// 404).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobForTag {
    /// The newest job for the recipe and tag, when there is one.
    pub job: Option<JobSummary>,
}

/// One recipe's outcome in a sweep, as [`SweepOutcome`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepRecipeOutcome {
    /// The recipe.
    pub recipe: RecipeName,
    /// True when the sweep did what the recipe needed (started, ran green, or had nothing to
    /// do); false when the recipe errored or its inline run was red.
    pub ok: bool,
}

/// The body of `POST /api/sweeps`: what one finished sweep did, sent by the sweep when
/// `listener_url` is set. No error text: it may quote a remote URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepOutcome {
    /// When the sweep started (RFC 3339, UTC).
    pub started_at: String,
    /// How long it took, in seconds.
    pub seconds: f64,
    /// True for a dry run (reported, but never a successful sweep).
    pub dry_run: bool,
    /// One entry per enrolled recipe.
    pub recipes: Vec<SweepRecipeOutcome>,
}

impl SweepOutcome {
    /// Returns true when every recipe is ok and it was not a dry run: what the "last successful
    /// sweep" counts.
    pub fn succeeded(&self) -> bool {
        !self.dry_run && self.recipes.iter().all(|r| r.ok)
    }
}

/// Why asking the listener failed. URLs in it never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum ListenerApiError {
    /// The base URL is not HTTP(S).
    #[error("listener URL {url}: {message}")]
    BadBaseUrl { url: String, message: String },
    /// The HTTP client could not be built.
    #[error("listener client: cannot build the HTTP client: {0}")]
    Client(String),
    /// Connecting, sending or reading failed (listener down, timeout).
    #[error("listener GET {url}: request failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// A 404 without the `{"job": null}` answer, or a 405: not a listener offering this question.
    #[error("listener GET {url}: HTTP {status} without a job answer: this listener does not offer the job lookup (is it older than this client?)")]
    NoRoute { url: String, status: u16 },
    /// Any other status than 200 or 404.
    #[error("listener GET {url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    /// The token holds characters a header cannot carry.
    #[error("listener GET {url}: the token cannot be sent in an Authorization header")]
    BadToken { url: String },
    /// The answer was not the JSON expected.
    #[error("listener GET {url}: unexpected answer: {message}")]
    Decode { url: String, message: String },
    /// Reporting a sweep failed (transport, or a status other than 2xx).
    #[error("listener POST {url}: {message}")]
    Report { url: String, message: String },
}

/// Returns `url` as an error may show it: no user name, password, query or fragment.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    // Both setters only fail for URLs that cannot carry credentials in the first place.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Refuses a base URL that is not HTTP(S) (every HTTP(S) URL can hold a path).
fn check_base(base: &Url) -> Result<(), ListenerApiError> {
    if matches!(base.scheme(), "http" | "https") {
        Ok(())
    } else {
        Err(ListenerApiError::BadBaseUrl {
            url: shown(base),
            message: "must start with http:// or https://".into(),
        })
    }
}

/// Returns the URL that asks `base` for the job of `recipe` at `tag`. The tag is one
/// percent-encoded path segment (a `/` in it cannot change the route).
pub fn job_url(base: &Url, recipe: &RecipeName, tag: &str) -> Result<Url, ListenerApiError> {
    check_base(base)?;
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| ListenerApiError::BadBaseUrl {
            url: shown(base),
            message: "cannot hold a path".into(),
        })?
        .pop_if_empty()
        .extend(["api", "recipes", recipe.as_str(), "tags", tag, "job"]);
    Ok(url)
}

/// A client for one listener; cheap to clone, reuse it for many questions.
#[derive(Debug, Clone)]
pub struct ListenerClient {
    http: reqwest::Client,
    base: Url,
    token: Option<Secret>,
}

impl ListenerClient {
    /// Creates a client for the listener at `base` (its root URL, e.g. `http://127.0.0.1:8088`).
    /// Each request times out after 15 s (5 s to connect).
    pub fn new(base: Url) -> Result<Self, ListenerApiError> {
        // Checked here so a bad URL fails at start, not at the first question.
        check_base(&base)?;
        let http = crate::http_client::client(CONNECT_TIMEOUT, REQUEST_TIMEOUT)
            .map_err(|e| ListenerApiError::Client(e.without_url().to_string()))?;
        Ok(Self {
            http,
            base,
            token: None,
        })
    }

    /// Returns the client sending `token` as a bearer token (`Authorization: Bearer ...`) with
    /// every request, for a listener that requires its admin token. It replaces basic auth
    /// from the base URL.
    pub fn with_token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        self
    }

    /// Returns the newest job the listener has for `recipe` at `tag`, or `None` when it has
    /// none (no webhook announced the tag).
    pub async fn job_for(
        &self,
        recipe: &RecipeName,
        tag: &str,
    ) -> Result<Option<JobSummary>, ListenerApiError> {
        let url = job_url(&self.base, recipe, tag)?;
        let transport = |e: reqwest::Error| ListenerApiError::Transport {
            url: shown(&url),
            source: e.without_url(),
        };
        let mut request = self
            .http
            .get(url.clone())
            .header("accept", "application/json")
            .build()
            .map_err(transport)?;
        self.authorize(&mut request, &url)?;
        let response = self.http.execute(request).await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?;
        let decode = |message: String| ListenerApiError::Decode {
            url: shown(&url),
            message,
        };
        match status {
            200 => serde_json::from_slice::<JobForTag>(&body)
                .map(|answer| answer.job)
                .map_err(|e| decode(format!("not a job answer: {e}"))),
            // `Option` fields default to `None` when missing, so "the key is there and null" is
            // checked on the raw value: `{"error": "not found"}` must not read as "no job".
            404 => match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(v) if v.get("job").is_some_and(serde_json::Value::is_null) => Ok(None),
                _ => Err(ListenerApiError::NoRoute {
                    url: shown(&url),
                    status,
                }),
            },
            405 => Err(ListenerApiError::NoRoute {
                url: shown(&url),
                status,
            }),
            status => Err(ListenerApiError::Status {
                url: shown(&url),
                status,
                message: excerpt(&body),
            }),
        }
    }
}

impl ListenerClient {
    /// Adds the admin token, when one is set, as the request's one `Authorization` header
    /// (marked sensitive); `url` names the request in the error of a token no header can hold.
    fn authorize(&self, request: &mut reqwest::Request, url: &Url) -> Result<(), ListenerApiError> {
        if let Some(token) = &self.token {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| decode_token(url))?;
            value.set_sensitive(true);
            // `insert`, not `append`: one Authorization header, never the URL's basic auth too.
            request
                .headers_mut()
                .insert(reqwest::header::AUTHORIZATION, value);
        }
        Ok(())
    }

    /// Reports a finished sweep (`POST /api/sweeps`, with the admin token when one is set).
    pub async fn report_sweep(&self, outcome: &SweepOutcome) -> Result<(), ListenerApiError> {
        check_base(&self.base)?;
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .map_err(|()| ListenerApiError::BadBaseUrl {
                url: shown(&self.base),
                message: "cannot hold a path".into(),
            })?
            .pop_if_empty()
            .extend(["api", "sweeps"]);
        let fail = |message: String| ListenerApiError::Report {
            url: shown(&url),
            message,
        };
        let mut request = self
            .http
            .post(url.clone())
            .json(outcome)
            .build()
            .map_err(|e| fail(e.without_url().to_string()))?;
        self.authorize(&mut request, &url)?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| fail(format!("request failed: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(fail(format!(
            "HTTP {}: {}",
            status.as_u16(),
            excerpt(&body)
        )))
    }
}

/// Asks the listener at `base` for the newest job it has for `recipe` at `tag`; `None` when it
/// has none. For many questions, build one [`ListenerClient`] and reuse it.
pub async fn job_for(
    base: &Url,
    recipe: &RecipeName,
    tag: &str,
) -> Result<Option<JobSummary>, ListenerApiError> {
    ListenerClient::new(base.clone())?
        .job_for(recipe, tag)
        .await
}

/// Returns the error for a token that cannot travel in a header (a control character in it);
/// the token itself is not shown.
fn decode_token(url: &Url) -> ListenerApiError {
    ListenerApiError::BadToken { url: shown(url) }
}

/// Returns the start of an answer body for an error, one line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut short: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(EXCERPT_CHARS)
        .collect();
    if text.chars().count() > EXCERPT_CHARS {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RecipeName {
        RecipeName::parse(s).unwrap()
    }

    #[test]
    fn job_urls_keep_the_base_path_and_encode_the_tag_as_one_segment() {
        let table = [
            (
                "http://127.0.0.1:8088",
                "1.2.0+3.4.5",
                "http://127.0.0.1:8088/api/recipes/app/tags/1.2.0+3.4.5/job",
            ),
            (
                "https://ci.example.org/canon/",
                "1.0.0+1",
                "https://ci.example.org/canon/api/recipes/app/tags/1.0.0+1/job",
            ),
            (
                "https://ci.example.org/canon?x=1#f",
                "a/b c",
                "https://ci.example.org/canon/api/recipes/app/tags/a%2Fb%20c/job",
            ),
        ];
        for (base, tag, want) in table {
            let url = job_url(&Url::parse(base).unwrap(), &name("app"), tag).unwrap();
            assert_eq!(url.as_str(), want, "{base} {tag}");
        }
    }

    #[test]
    fn urls_in_errors_carry_no_credentials() {
        let url = Url::parse("https://user:s3cret@ci.example.org/canon?token=t0k#x").unwrap();
        let s = shown(&url);
        assert_eq!(s, "https://ci.example.org/canon");
        let bad = Url::parse("ftp://user:s3cret@ci.example.org/").unwrap();
        let e = ListenerClient::new(bad).unwrap_err();
        assert!(matches!(e, ListenerApiError::BadBaseUrl { .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains("http://"), "{e}");
        assert!(!e.contains("s3cret") && !e.contains("user"), "{e}");
    }

    #[test]
    fn job_states_keep_their_stored_names() {
        use JobState::*;
        for (state, name, terminal) in [
            (Queued, "queued", false),
            (Running, "running", false),
            (Retrying, "retrying", false),
            (Done, "done", true),
            (Skipped, "skipped", true),
            (Failed, "failed", true),
        ] {
            assert_eq!(state.as_str(), name);
            assert_eq!(name.parse::<JobState>(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), name);
            assert_eq!(state.is_terminal(), terminal, "{name}");
        }
        assert!("Done".parse::<JobState>().is_err());
    }

    /// Serves each `(status, body)` once, in order, on loopback; returns the base URL.
    fn answering(answers: Vec<(u16, &'static str)>) -> Url {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}/", server.server_addr());
        std::thread::spawn(move || {
            for (status, body) in answers {
                let Ok(req) = server.recv() else { return };
                let _ =
                    req.respond(tiny_http::Response::from_string(body).with_status_code(status));
            }
        });
        Url::parse(&base).unwrap()
    }

    #[tokio::test]
    async fn each_answer_reads_as_a_job_no_job_or_a_named_error() {
        let job = r#"{"job":{"id":3,"recipe":"app","tag":"1.0.0+1","forge":"forgejo","repo":"o/app",
            "state":"retrying","commit":null,"build":null,"attempts":2,
            "created_at":"2024-05-01T12:00:00.000000Z","updated_at":"2024-05-01T12:00:01.000000Z"}}"#;
        let answers = vec![
            (200, job),
            (404, r#"{"job":null}"#),
            (404, r#"{"error":"not found"}"#),
            (404, "not json"),
            (405, r#"{"error":"method not allowed"}"#),
            (500, r#"{"error":"journal unavailable"}"#),
            (200, r#"{"job":{"id":"three"}}"#),
        ];
        let client = ListenerClient::new(answering(answers)).unwrap();
        let app = name("app");
        let ask = || client.job_for(&app, "1.0.0+1");
        let found = ask().await.unwrap().expect("a job");
        assert_eq!(
            (found.forge, found.state, found.attempts),
            (ForgeKind::Forgejo, JobState::Retrying, 2)
        );
        assert_eq!(ask().await.unwrap(), None, "404 with a null job is no job");
        for status in [404, 404, 405] {
            match ask().await {
                Err(ListenerApiError::NoRoute { status: s, .. }) => assert_eq!(s, status),
                other => panic!("{status}: {other:?}"),
            }
        }
        match ask().await {
            Err(e @ ListenerApiError::Status { status: 500, .. }) => {
                assert!(e.to_string().contains("journal unavailable"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(ask().await, Err(ListenerApiError::Decode { .. })));
    }

    #[tokio::test]
    async fn the_token_travels_as_one_bearer_header_instead_of_basic_auth() {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://user:pw@{}/", server.server_addr());
        let seen = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let Ok(req) = server.recv() else { break };
                seen.push(
                    req.headers()
                        .iter()
                        .filter(|h| h.field.equiv("authorization"))
                        .map(|h| h.value.to_string())
                        .collect::<Vec<_>>(),
                );
                let _ = req.respond(
                    tiny_http::Response::from_string(r#"{"job":null}"#).with_status_code(404),
                );
            }
            seen
        });
        let client = ListenerClient::new(Url::parse(&base).unwrap()).unwrap();
        assert_eq!(client.job_for(&name("app"), "1.0.0+1").await.unwrap(), None);
        let client = client.with_token(Secret::new("admin-token-0123456789"));
        assert_eq!(client.job_for(&name("app"), "1.0.0+1").await.unwrap(), None);
        assert!(!format!("{client:?}").contains("admin-token-0123456789"));
        let seen = seen.join().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].len(), 1, "basic auth from the URL: {:?}", seen[0]);
        assert!(seen[0][0].starts_with("Basic "), "{:?}", seen[0]);
        assert_eq!(seen[1], ["Bearer admin-token-0123456789"]);
    }

    #[test]
    fn excerpts_are_one_short_line() {
        let long = format!("line one\nline two {}", "x".repeat(500));
        let e = excerpt(long.as_bytes());
        assert!(!e.contains('\n'));
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
    }
}
