//! `POST /drone/config`: Drone's configuration extension (`DRONE_YAML_ENDPOINT`). Drone asks,
//! for every build, which pipeline to run; canon answers `{"data": "<yaml>"}` with its own
//! pipeline for a recipe mirror and for the builds it starts, and 204 for any other repository,
//! whose own `.drone.yml` is then used.
//!
//! Drone signs the request as drone-go's plugin client does (`plugin/internal/client/client.go`
//! with the `99designs/httpsignatures-go` version drone-go pins): a `Signature` header
//! `keyId="hmac-key",algorithm="hmac-sha256",signature="…",headers="accept accept-encoding
//! content-type date digest"`, the signature being base64 HMAC-SHA256, keyed with the shared
//! secret as given, over the lines `name: value` of those headers joined by `\n`, and a `Digest:
//! SHA-256=<base64 SHA-256 of the body>`. [`verify_request`] checks all of it, plus the `Date`
//! within five minutes of now (drone-go itself checks neither the digest nor the date, which a
//! replay would exploit); anything else is a bare 401, and nothing is journaled or logged but the
//! refusal's reason. Drone's request carries a token for the repository: it is never read.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use canon_shared::secret::Secret;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warp::http::{HeaderMap, StatusCode};

use crate::config::PipelineSettings;
use crate::pipelines::{self, RenderContext, RepoRole};
use crate::routes::{reply_json, AppState, Reply};

/// The headers drone-go signs, in its order.
pub const SIGNED_HEADERS: &str = "accept accept-encoding content-type date digest";
/// The key id drone-go sends.
pub const KEY_ID: &str = "hmac-key";
/// How far a request's `Date` may be from now, either way.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// The largest request body read.
pub const MAX_BODY: u64 = 256 * 1024;

/// What the configuration extension needs besides the enrollment.
#[derive(Debug, Clone)]
pub struct DroneConfig {
    /// The secret shared with Drone's `DRONE_YAML_SECRET`.
    pub secret: Secret,
    /// What the pipelines are rendered from.
    pub pipelines: PipelineSettings,
    /// The repository the listener starts builds in (`CANON_DRONE_REPO`).
    pub drone_repo: String,
    /// The branch builds are started on (`CANON_DRONE_BRANCH`).
    pub drone_branch: String,
    /// This listener's public URL (`CANON_PUBLIC_URL`), which the sweep reports to.
    pub public_url: Option<String>,
}

/// Why a configuration request was refused. Never carries a signature, a header value or the
/// body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestSignatureError {
    /// No `Signature` header (nor an `Authorization: Signature …`).
    #[error("no Signature header")]
    Missing,
    /// The header is not `key="value"` pairs with keyId, algorithm, headers and signature.
    #[error("malformed Signature header")]
    Malformed,
    /// Not `keyId="hmac-key"`, `algorithm="hmac-sha256"` over drone-go's headers.
    #[error("not signed as Drone signs (keyId, algorithm or signed headers differ)")]
    NotDroneSigned,
    /// A signed header is missing.
    #[error("signed header {0} is missing")]
    MissingHeader(&'static str),
    /// The `Date` is not an HTTP date, or too far from now.
    #[error("the Date is unreadable or more than five minutes from now")]
    Stale,
    /// The `Digest` is not `SHA-256=` the body's digest.
    #[error("the Digest does not match the body")]
    Digest,
    /// The signature is not the secret's.
    #[error("the signature does not match the secret")]
    Mismatch,
}

/// Returns the `key="value"` pairs of a signature header, or `None` when it is not only those.
fn signature_params(value: &str) -> Option<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let key = key.trim_start_matches(',').trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let (val, after) = after.split_once('"')?;
        out.push((key, val));
        rest = after.trim_start();
        if !rest.is_empty() {
            rest = rest.strip_prefix(',')?.trim_start();
        }
    }
    Some(out)
}

/// Returns the first value of header `name` as text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies a configuration request as described in the module's header: signature, digest and
/// date. `now` is passed so tests can move it.
pub fn verify_request(
    headers: &HeaderMap,
    body: &[u8],
    secret: &Secret,
    now: SystemTime,
) -> Result<(), RequestSignatureError> {
    use RequestSignatureError as E;
    let raw = header(headers, "signature")
        .or_else(|| header(headers, "authorization").and_then(|a| a.strip_prefix("Signature ")))
        .ok_or(E::Missing)?;
    let params = signature_params(raw).ok_or(E::Malformed)?;
    let get = |k: &str| params.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    if params
        .iter()
        .any(|(k, _)| !matches!(*k, "keyId" | "algorithm" | "headers" | "signature"))
    {
        return Err(E::Malformed);
    }
    let (Some(key_id), Some(algorithm), Some(signed), Some(signature)) = (
        get("keyId"),
        get("algorithm"),
        get("headers"),
        get("signature"),
    ) else {
        return Err(E::Malformed);
    };
    if key_id != KEY_ID
        || algorithm != "hmac-sha256"
        || signed.to_ascii_lowercase() != SIGNED_HEADERS
    {
        return Err(E::NotDroneSigned);
    }
    let mut lines = Vec::new();
    for name in [
        "accept",
        "accept-encoding",
        "content-type",
        "date",
        "digest",
    ] {
        match header(headers, name).filter(|v| !v.is_empty()) {
            Some(v) => lines.push(format!("{name}: {v}")),
            None => return Err(E::MissingHeader(name)),
        }
    }
    let signing = lines.join("\n");
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return Err(E::Mismatch);
    };
    mac.update(signing.as_bytes());
    let wanted = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let signature_ok: bool = Sha256::digest(signature.as_bytes())
        .ct_eq(&Sha256::digest(wanted.as_bytes()))
        .into();
    if !signature_ok {
        return Err(E::Mismatch);
    }
    let digest = header(headers, "digest").unwrap_or_default();
    let body_digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    if digest.strip_prefix("SHA-256=") != Some(body_digest.as_str()) {
        return Err(E::Digest);
    }
    let date = header(headers, "date").unwrap_or_default();
    let at = httpdate::parse_http_date(date).map_err(|_| E::Stale)?;
    let skew = now
        .duration_since(at)
        .or_else(|_| at.duration_since(now))
        .unwrap_or(Duration::MAX);
    if skew > MAX_CLOCK_SKEW {
        return Err(E::Stale);
    }
    Ok(())
}

/// The part of Drone's request canon reads (`config.Request` of drone-go: build and repo; the
/// token is left alone).
#[derive(Debug, Deserialize)]
struct ConfigRequest {
    #[serde(default)]
    build: Build,
    repo: Repo,
}

#[derive(Debug, Default, Deserialize)]
struct Build {
    #[serde(default)]
    event: String,
}

#[derive(Debug, Deserialize)]
struct Repo {
    #[serde(default)]
    slug: String,
    #[serde(default)]
    git_http_url: String,
    #[serde(default)]
    link: String,
}

/// Returns what the repository of `repo` is to canon, or `None` when it is none of its.
fn role(state: &AppState, config: &DroneConfig, repo: &Repo) -> Option<RepoRole> {
    let names: Vec<&str> = [&repo.slug, &repo.git_http_url, &repo.link]
        .into_iter()
        .map(String::as_str)
        .filter(|s| !s.trim().is_empty())
        .collect();
    let mirror = state
        .enrollment
        .recipes
        .iter()
        .any(|r| names.iter().any(|n| r.mirror.matches(n)));
    let slug = repo.slug.trim();
    let builds = !slug.is_empty()
        && (config.drone_repo.eq_ignore_ascii_case(slug)
            || state
                .enrollment
                .recipes
                .iter()
                .filter_map(|r| r.drone_repo.as_deref())
                .any(|d| d.eq_ignore_ascii_case(slug)));
    match (mirror, builds) {
        (true, true) => Some(RepoRole::MirrorAndBuilds),
        (true, false) => Some(RepoRole::Mirror),
        (false, true) => Some(RepoRole::Builds),
        (false, false) => None,
    }
}

/// `POST /drone/config`: verifies, then answers the pipeline (200), "use your own" (204), or 401.
pub async fn handle(
    headers: HeaderMap,
    body: bytes::Bytes,
    state: Arc<AppState>,
) -> Result<Reply, warp::Rejection> {
    let Some(config) = state.drone_config() else {
        // A rejection would let another route's 405 win; not served is a plain 404.
        return Ok(reply_json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "not found" }),
        ));
    };
    if let Err(e) = verify_request(&headers, &body, &config.secret, SystemTime::now()) {
        tracing::warn!(reason = %e, "Refused a Drone configuration request.");
        return Ok(Box::new(StatusCode::UNAUTHORIZED));
    }
    let request: ConfigRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => {
            return Ok(reply_json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": "not a Drone configuration request" }),
            ))
        }
    };
    let event = request.build.event.as_str();
    let pipeline =
        role(&state, config, &request.repo).and_then(|role| pipelines::pipeline_for(role, event));
    let Some(pipeline) = pipeline else {
        tracing::info!(repo = %request.repo.slug, event, "Drone configuration: not canon's, the repository's own.");
        return Ok(Box::new(StatusCode::NO_CONTENT));
    };
    let yaml = pipelines::render(
        pipeline,
        &config.pipelines,
        RenderContext {
            drone_branch: &config.drone_branch,
            listener_url: config.public_url.as_deref(),
        },
    );
    tracing::info!(repo = %request.repo.slug, event, pipeline = ?pipeline, "Drone configuration: canon's pipeline.");
    Ok(reply_json(
        StatusCode::OK,
        &serde_json::json!({ "data": yaml }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signs as drone-go does (see the module's header).
    fn signed(secret: &str, body: &[u8], date: SystemTime) -> HeaderMap {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut h = HeaderMap::new();
        let pairs = [
            ("accept", "application/json".to_string()),
            ("accept-encoding", "identity".to_string()),
            ("content-type", "application/json".to_string()),
            ("date", httpdate::fmt_http_date(date)),
            (
                "digest",
                format!("SHA-256={}", b64.encode(Sha256::digest(body))),
            ),
        ];
        let signing: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(signing.join("\n").as_bytes());
        let sig = b64.encode(mac.finalize().into_bytes());
        for (k, v) in pairs {
            h.insert(k, v.parse().unwrap());
        }
        h.insert(
            "signature",
            format!(r#"keyId="hmac-key",algorithm="hmac-sha256",signature="{sig}",headers="{SIGNED_HEADERS}""#)
                .parse()
                .unwrap(),
        );
        h
    }

    #[test]
    fn a_request_signed_as_drone_signs_passes_and_each_change_fails() {
        let secret = Secret::new("drone-yaml-secret-0123456789");
        let now = SystemTime::now();
        let body = br#"{"repo":{"slug":"a/b"}}"#;
        let h = signed(secret.expose(), body, now);
        assert_eq!(verify_request(&h, body, &secret, now), Ok(()));
        assert_eq!(
            verify_request(&h, b"{}", &secret, now),
            Err(RequestSignatureError::Digest)
        );
        assert_eq!(
            verify_request(&h, body, &Secret::new("another-secret-0123456"), now),
            Err(RequestSignatureError::Mismatch)
        );
        assert_eq!(
            verify_request(&h, body, &secret, now + Duration::from_secs(301)),
            Err(RequestSignatureError::Stale)
        );
        let mut missing = h.clone();
        missing.remove("accept");
        assert_eq!(
            verify_request(&missing, body, &secret, now),
            Err(RequestSignatureError::MissingHeader("accept"))
        );
    }

    #[test]
    fn signature_parameters_are_quoted_pairs_only() {
        assert_eq!(
            signature_params(r#"keyId="a",algorithm="b",signature="c=",headers="d e""#),
            Some(vec![
                ("keyId", "a"),
                ("algorithm", "b"),
                ("signature", "c="),
                ("headers", "d e")
            ])
        );
        assert_eq!(signature_params(r#"keyId=a"#), None);
        assert_eq!(signature_params(r#"keyId="a" algorithm="b""#), None);
        assert_eq!(signature_params(r#"keyId="a"#), None);
    }
}
