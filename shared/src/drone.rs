//! The Drone REST client: start a build with canon's parameters, and find a build already started.
//!
//! The listener and the weekly sweep both trigger cold runs through this one module, so a tag
//! is started the same way whoever noticed it. Facts it encodes (Drone v2 `handler/api`):
//! - `POST /api/repos/{owner}/{name}/builds?branch=..&K=V..` turns every query key other than
//!   `branch`, `commit` and `access_token` into a build parameter; values must be percent-encoded
//!   and `+` must travel as `%2B`, because Go decodes a bare `+` as a space (Co-op Cloud tags such
//!   as `1.2.0+3.4.5` contain one).
//! - A `200` with the body `null` means no pipeline matched (trigger filters): no build exists.
//! - `401` is a bad token; `404` is a missing repository *or* a token without write access
//!   (Drone hides permission failures as 404); `501` is a Drone without the feature.
//! - Errors are JSON `{"message": ..}`.
//!
//! The token only travels in the `Authorization: Bearer` header, never in a URL, so URLs in
//! errors are safe to show.

use std::collections::BTreeMap;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

use crate::commit::CommitId;
use crate::recipe::RecipeName;
use crate::secret::Secret;

/// Characters left as they are in a query value: RFC 3986 unreserved. Everything else,
/// including `+`, `&`, `=`, `/` and space, is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Builds per page when listing (Drone's maximum).
const PAGE_SIZE: usize = 100;

/// How many pages [`DroneClient::find_build`] reads at most (the newest 2,000 builds).
pub const MAX_PAGES: usize = 20;

/// Build parameter names canon sets on every build it starts.
pub const PARAM_RECIPE: &str = "CANON_RECIPE";
/// See [`PARAM_RECIPE`].
pub const PARAM_TAG: &str = "CANON_TAG";
/// See [`PARAM_RECIPE`].
pub const PARAM_COMMIT: &str = "CANON_COMMIT";

/// What a canon build is about: one recipe at one release tag and the commit it points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildParams {
    /// The enrolled recipe.
    pub recipe: RecipeName,
    /// The release tag, e.g. `1.2.0+3.4.5`.
    pub tag: String,
    /// The commit the tag points to (peeled).
    pub commit: CommitId,
}

impl BuildParams {
    /// Returns the build parameters as Drone query pairs, in a fixed order.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            (PARAM_RECIPE, self.recipe.as_str()),
            (PARAM_TAG, self.tag.as_str()),
            (PARAM_COMMIT, self.commit.as_str()),
        ]
    }

    /// Returns true when a build's parameters name the same recipe, tag and commit.
    pub fn matches(&self, params: &BTreeMap<String, String>) -> bool {
        self.pairs()
            .iter()
            .all(|(k, v)| params.get(*k).map(String::as_str) == Some(*v))
    }
}

/// A Drone build, as far as canon reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// The build number (what the UI shows and `GET .../builds/{number}` takes).
    pub number: u64,
    /// `pending`, `running`, `success`, `failure`, `error`, `killed`, `blocked`, ...
    #[serde(default)]
    pub status: String,
    /// The build's web link, when the server sets one.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub link: Option<String>,
    /// The build parameters (custom builds carry canon's `CANON_*`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub params: BTreeMap<String, String>,
}

impl Build {
    /// Returns true when the build is still to run or running (Drone's `IsDone() == false`).
    pub fn in_progress(&self) -> bool {
        matches!(
            self.status.as_str(),
            "pending" | "running" | "waiting_on_dependencies" | "blocked"
        )
    }

    /// Returns true when the build counts as started-and-not-failed: in progress or `success`.
    /// Such a build makes starting another one for the same parameters a duplicate.
    pub fn counts_as_started(&self) -> bool {
        self.in_progress() || self.status == "success"
    }
}

fn empty_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Why a Drone call failed. URLs never carry the token.
#[derive(Debug, thiserror::Error)]
pub enum DroneError {
    /// The client settings are unusable.
    #[error("Drone client: {0}")]
    Config(String),
    /// Connecting, sending or reading failed (Drone unreachable, timeout).
    #[error("Drone {method} {url}: request failed: {source}")]
    Transport {
        method: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// 401: the token is missing, wrong or revoked.
    #[error("Drone {method} {url}: 401 Unauthorized: the Drone token is not valid")]
    Unauthorized { method: &'static str, url: String },
    /// 404: the repository does not exist in Drone, is not activated, or the token's user has
    /// no write access to it (Drone answers 404 for missing permission).
    #[error("Drone {method} {url}: 404 Not Found: the repository {repo} is unknown to Drone, not activated, or the token has no write access to it")]
    NotFound {
        method: &'static str,
        url: String,
        repo: String,
    },
    /// 501: this Drone server does not implement the call.
    #[error("Drone {method} {url}: 501 Not Implemented: this Drone server does not offer this API ({message})")]
    NotImplemented {
        method: &'static str,
        url: String,
        message: String,
    },
    /// Another non-2xx status.
    #[error("Drone {method} {url}: HTTP {status}: {message}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    /// Drone created no build because no pipeline matched (it answered `null`).
    #[error("Drone created no build for {repo} on branch {branch}: no pipeline matched (the answer was `null`; pipelines must accept `event: custom`)")]
    NoPipeline { repo: String, branch: String },
    /// The answer was not the JSON expected.
    #[error("Drone {method} {url}: unexpected answer: {message}")]
    Decode {
        method: &'static str,
        url: String,
        message: String,
    },
}

impl DroneError {
    /// Returns true when trying again later may succeed (network trouble, 5xx other than 501,
    /// 429); false for answers that need an operator (bad token, no permission, no pipeline).
    pub fn is_transient(&self) -> bool {
        match self {
            DroneError::Transport { .. } | DroneError::Decode { .. } => true,
            DroneError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

/// Fails unless `repo` is `owner/name` with safe parts.
/// Checks that `repo` is a Drone repository name (the enrollment's rule,
/// [`crate::recipe::is_drone_repo`]).
fn check_repo(repo: &str) -> Result<(), DroneError> {
    if !crate::recipe::is_drone_repo(repo) {
        return Err(DroneError::Config(format!(
            "repository {repo:?} is not `owner/name`"
        )));
    }
    Ok(())
}

/// A client for one Drone repository.
#[derive(Clone)]
pub struct DroneClient {
    http: reqwest::Client,
    server: String,
    token: Secret,
    repo: String,
}

impl std::fmt::Debug for DroneClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DroneClient")
            .field("server", &self.server)
            .field("repo", &self.repo)
            .field("token", &self.token)
            .finish()
    }
}

impl DroneClient {
    /// Creates a client for `repo` (`owner/name`) on the Drone at `server` (`http(s)://host[:port]`).
    pub fn new(server: &str, token: Secret, repo: &str) -> Result<Self, DroneError> {
        let server = server.trim().trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&server)
            .map_err(|e| DroneError::Config(format!("server URL {server:?} is not valid: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(DroneError::Config(format!(
                "server URL {server:?} must start with http:// or https://"
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(DroneError::Config(
                "the server URL must not carry credentials; the token is sent as a header".into(),
            ));
        }
        check_repo(repo)?;
        if token.is_empty() {
            return Err(DroneError::Config("the Drone token is empty".into()));
        }
        let http = crate::http_client::client(Duration::from_secs(10), Duration::from_secs(30))
            .map_err(|e| DroneError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            server,
            token,
            repo: repo.to_string(),
        })
    }

    /// Returns a client for the same server and token that starts builds in `repo` instead (a
    /// recipe's own Drone repository, pinned to the runner host that holds its warm data).
    pub fn for_repo(&self, repo: &str) -> Result<Self, DroneError> {
        check_repo(repo)?;
        Ok(Self {
            repo: repo.to_string(),
            ..self.clone()
        })
    }

    /// Returns the repository (`owner/name`) this client starts builds in.
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// Returns the URL that starts a build on `branch` with `params` (no token in it).
    pub fn start_build_url(&self, branch: &str, params: &BuildParams) -> String {
        let mut url = format!(
            "{}/api/repos/{}/builds?branch={}",
            self.server,
            self.repo,
            enc(branch)
        );
        for (k, v) in params.pairs() {
            url.push('&');
            url.push_str(k);
            url.push('=');
            url.push_str(&enc(v));
        }
        url
    }

    /// Starts a custom build on `branch` carrying `CANON_RECIPE`, `CANON_TAG` and `CANON_COMMIT`.
    ///
    /// Fails with [`DroneError::NoPipeline`] when Drone matched no pipeline (`null`), and with a
    /// clear error on 401, 404 and 501.
    pub async fn start_build(
        &self,
        branch: &str,
        params: &BuildParams,
    ) -> Result<Build, DroneError> {
        let url = self.start_build_url(branch, params);
        let body = self.call("POST", &url).await?;
        let build: Option<Build> =
            serde_json::from_slice(&body).map_err(|e| DroneError::Decode {
                method: "POST",
                url: url.clone(),
                message: format!("not a build: {e}"),
            })?;
        build.ok_or_else(|| DroneError::NoPipeline {
            repo: self.repo.clone(),
            branch: branch.to_string(),
        })
    }

    /// Returns one build by number.
    pub async fn get_build(&self, number: u64) -> Result<Build, DroneError> {
        let url = format!("{}/api/repos/{}/builds/{number}", self.server, self.repo);
        let body = self.call("GET", &url).await?;
        serde_json::from_slice(&body).map_err(|e| DroneError::Decode {
            method: "GET",
            url,
            message: format!("not a build: {e}"),
        })
    }

    /// Finds a build with the same `CANON_RECIPE`, `CANON_TAG` and `CANON_COMMIT` that is
    /// pending, running (or otherwise not done) or succeeded: starting another would be a
    /// duplicate. Reads the newest builds first, page by page, up to [`MAX_PAGES`] pages.
    pub async fn find_build(&self, params: &BuildParams) -> Result<Option<Build>, DroneError> {
        for page in 1..=MAX_PAGES {
            let url = format!(
                "{}/api/repos/{}/builds?page={page}&per_page={PAGE_SIZE}",
                self.server, self.repo
            );
            let body = self.call("GET", &url).await?;
            let builds: Option<Vec<Build>> =
                serde_json::from_slice(&body).map_err(|e| DroneError::Decode {
                    method: "GET",
                    url: url.clone(),
                    message: format!("not a list of builds: {e}"),
                })?;
            let builds = builds.unwrap_or_default();
            if let Some(found) = builds
                .iter()
                .find(|b| params.matches(&b.params) && b.counts_as_started())
            {
                return Ok(Some(found.clone()));
            }
            if builds.len() < PAGE_SIZE {
                break;
            }
        }
        Ok(None)
    }

    /// Sends one request and returns the body of a 2xx answer, or the error for its status.
    async fn call(&self, method: &'static str, url: &str) -> Result<Vec<u8>, DroneError> {
        tracing::debug!(method, url, "+ drone request");
        let request = match method {
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        };
        let transport = |source: reqwest::Error| DroneError::Transport {
            method,
            url: url.to_string(),
            source: source.without_url(),
        };
        let response = request
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let url = url.to_string();
        Err(match status {
            401 => DroneError::Unauthorized { method, url },
            404 => DroneError::NotFound {
                method,
                url,
                repo: self.repo.clone(),
            },
            501 => DroneError::NotImplemented {
                method,
                url,
                message: error_message(&body, &self.token),
            },
            _ => DroneError::Status {
                method,
                url,
                status,
                message: error_message(&body, &self.token),
            },
        })
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved kept; `+` becomes `%2B`).
pub fn enc(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Returns Drone's `{"message": ..}`, or the start of a non-JSON body, as one safe line.
fn error_message(body: &[u8], token: &Secret) -> String {
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    let text = match serde_json::from_slice::<Message>(body) {
        Ok(m) => m.message,
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    let line = token.redact(line.trim());
    if line.is_empty() {
        "(no message)".into()
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> BuildParams {
        BuildParams {
            recipe: RecipeName::parse("custom-html").unwrap(),
            tag: "1.2.0+3.4.5".into(),
            commit: CommitId::parse(&"a".repeat(40)).unwrap(),
        }
    }

    #[test]
    fn plus_and_reserved_characters_are_percent_encoded() {
        assert_eq!(enc("1.2.0+3.4.5"), "1.2.0%2B3.4.5");
        assert_eq!(enc("a b&c=d/e?f#g"), "a%20b%26c%3Dd%2Fe%3Ff%23g");
        assert_eq!(enc("refs/tags/x"), "refs%2Ftags%2Fx");
        assert_eq!(enc("main_-.~"), "main_-.~");
    }

    #[test]
    fn start_url_carries_every_param_encoded() {
        let c = DroneClient::new("http://drone.example/", Secret::new("t0k"), "canon/ci").unwrap();
        let url = c.start_build_url("main", &params());
        assert_eq!(
            url,
            format!(
                "http://drone.example/api/repos/canon/ci/builds?branch=main&CANON_RECIPE=custom-html&CANON_TAG=1.2.0%2B3.4.5&CANON_COMMIT={}",
                "a".repeat(40)
            )
        );
        assert!(!url.contains("t0k"));
    }

    #[test]
    fn bad_settings_are_refused() {
        let t = || Secret::new("t");
        for (server, repo, token, want) in [
            ("drone.example", "a/b", t(), "not valid"),
            ("ftp://drone.example", "a/b", t(), "http://"),
            ("https://u:p@drone.example", "a/b", t(), "credentials"),
            ("https://drone.example", "ab", t(), "owner/name"),
            ("https://drone.example", "a/b/c", t(), "owner/name"),
            ("https://drone.example", "a/..", t(), "owner/name"),
            ("https://drone.example", "a/b", Secret::new(""), "empty"),
        ] {
            let err = DroneClient::new(server, token, repo)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{server} {repo}: {err}");
        }
    }

    #[test]
    fn builds_decode_leniently_and_match_params() {
        let json = r#"[{"id":1,"number":7,"status":"running","link":"","params":null},
                       {"number":8,"status":"success","link":"http://d/8","params":{"CANON_RECIPE":"custom-html","CANON_TAG":"1.2.0+3.4.5","CANON_COMMIT":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","x":"y"}}]"#;
        let builds: Vec<Build> = serde_json::from_str(json).unwrap();
        assert_eq!(builds[0].link, None);
        assert!(builds[0].params.is_empty());
        assert!(!params().matches(&builds[0].params));
        assert!(params().matches(&builds[1].params));
        assert!(builds[1].counts_as_started());
        let failed = Build {
            status: "failure".into(),
            ..builds[1].clone()
        };
        assert!(!failed.counts_as_started());
    }

    #[test]
    fn error_messages_are_one_line_and_never_echo_the_token() {
        let t = Secret::new("s3cret");
        assert_eq!(
            error_message(br#"{"message":"Not Found"}"#, &t),
            "Not Found"
        );
        assert_eq!(error_message(b"bad s3cret\nline", &t), "bad *** line");
        assert_eq!(error_message(b"", &t), "(no message)");
    }
}
