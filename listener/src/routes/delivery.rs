//! The webhook extractor: a warp filter that turns `POST /hooks/{kind}` into a verified, typed
//! [`Delivery`], or rejects it with a [`Rejected`] that says how to answer.
//!
//! It is separate from the handler so that nothing past it sees an unverified body or a string
//! still to be parsed: the handler ([`super::hooks`]) only journals what this yields.
//!
//! Order of checks, cheapest and safest first: the hook kind (404), content type (form-encoded
//! hooks sign the decoded field, not the body, so they are refused with 415), declared length
//! (413), the body read with a 1 MiB cap (413), the signature over the raw bytes in constant time
//! (401, nothing stored), the event header and JSON (400). Only then is the payload looked at and
//! matched against the enrollment.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use canon_shared::forge::ForgeKind;
use canon_shared::recipe::RepoLocation;
use canon_shared::version::ReleaseVersion;
use futures_util::{Stream, StreamExt};
use warp::http::{HeaderMap, StatusCode};
use warp::{Filter, Rejection};

use crate::clock::now_text;
use crate::event::{self, Fact};
use crate::journal::{DeliveryRow, IntakeFact};
use crate::routes::AppState;
use crate::verify;

/// The largest body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// The event headers, in the order they are read.
const EVENT_HEADERS: [&str; 4] = [
    "x-forgejo-event",
    "x-gitea-event",
    "x-github-event",
    "x-gogs-event",
];

/// A verified webhook delivery, parsed and matched against the enrollment.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Which forge sent it.
    pub forge: ForgeKind,
    /// The delivery id header, cut to `[A-Za-z0-9-]` and 64 characters (may be empty).
    pub id: String,
    /// The event header, lower-cased.
    pub event: String,
    /// What it means for canon.
    pub fact: IntakeFact,
}

/// Why a request to `/hooks/{kind}` yields no delivery, with what to answer.
#[derive(Debug)]
pub enum Rejected {
    /// Not a hook canon serves: answered 404, not recorded.
    UnknownKind,
    /// A refused delivery: answered `status` with `reason`, kept in memory (never journaled).
    Refused {
        /// The status to answer.
        status: StatusCode,
        /// The metrics outcome (`rejected_request` or `rejected_signature`).
        outcome: &'static str,
        /// The row shown by `/api/deliveries`; its `reason` is the answer's error.
        row: Box<DeliveryRow>,
    },
}

impl warp::reject::Reject for Rejected {}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

fn header_text(headers: &HeaderMap, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        headers
            .get(*n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    })
}

/// Returns a delivery id safe to store and log: `[A-Za-z0-9-]`, at most 64 characters.
fn delivery_id(headers: &HeaderMap) -> String {
    header_text(
        headers,
        &[
            "x-gitea-delivery",
            "x-forgejo-delivery",
            "x-github-delivery",
            "x-gogs-delivery",
        ],
    )
    .unwrap_or_default()
    .chars()
    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
    .take(64)
    .collect()
}

async fn read_body<S, B>(mut body: S) -> Result<Bytes, StatusCode>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        if buf.len() + chunk.remaining() > MAX_BODY {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

/// Returns the filter that yields a [`Delivery`] for `POST /hooks/{kind}`, or rejects with
/// [`Rejected`] (and with warp's own rejections for any other method or path).
pub fn delivery(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Delivery,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::path!("hooks" / String)
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(super::with_state(state))
        .and_then(
            |kind: String, headers: HeaderMap, body, state: Arc<AppState>| async move {
                extract(&kind, &headers, Box::pin(body), &state)
                    .await
                    .map_err(warp::reject::custom)
            },
        )
}

/// Returns the forge a hook path and its headers name, or `None` for a path canon does not serve.
fn forge_of(kind: &str, headers: &HeaderMap) -> Option<ForgeKind> {
    match kind {
        "github" => Some(ForgeKind::GitHub),
        "gitea" | "forgejo" | "gogs" if headers.contains_key("x-forgejo-event") => {
            Some(ForgeKind::Forgejo)
        }
        "gitea" | "forgejo" | "gogs" => Some(ForgeKind::Gitea),
        _ => None,
    }
}

/// Verifies and parses one delivery to `/hooks/{kind}`.
async fn extract<S, B>(
    kind: &str,
    headers: &HeaderMap,
    body: S,
    state: &AppState,
) -> Result<Delivery, Rejected>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let forge = forge_of(kind, headers).ok_or(Rejected::UnknownKind)?;
    let delivery = delivery_id(headers);
    let refuse = |status: StatusCode, outcome: &'static str, reason: &str| Rejected::Refused {
        status,
        outcome,
        row: Box::new(DeliveryRow {
            delivery: delivery.clone(),
            forge,
            event: header_text(headers, &EVENT_HEADERS)
                .map(|e| event::safe(&e))
                .unwrap_or_default(),
            repo: None,
            recipe: None,
            tag: None,
            outcome: "rejected".into(),
            reason: Some(reason.to_string()),
            job: None,
            received_at: now_text(),
            repeats: 0,
        }),
    };

    let content_type = header_text(headers, &["content-type"]).unwrap_or_default();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/x-www-form-urlencoded" || mime == "multipart/form-data" {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "rejected_request",
            "form-encoded webhooks are not supported: set the hook's content type to JSON (application/json)",
        ));
    }
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "rejected_request",
            "body larger than 1 MiB",
        )
    };
    if let Some(len) = header_text(headers, &["content-length"]).and_then(|l| l.parse::<u64>().ok())
    {
        if len > MAX_BODY as u64 {
            return Err(too_large());
        }
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(StatusCode::PAYLOAD_TOO_LARGE) => return Err(too_large()),
        Err(status) => {
            return Err(refuse(
                status,
                "rejected_request",
                "the body could not be read",
            ))
        }
    };
    if let Err(e) = verify::verify(|n| header(headers, n), &body, &state.secrets) {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "rejected_signature",
            &e.to_string(),
        ));
    }
    let Some(event_name) = header_text(headers, &EVENT_HEADERS) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "rejected_request",
            "no event header (X-Gitea-Event or X-GitHub-Event)",
        ));
    };
    let event_name = event_name.to_ascii_lowercase();
    let fact = event::parse(&event_name, &body)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, "rejected_request", &e.to_string()))?;
    Ok(Delivery {
        forge,
        id: delivery,
        event: event_name,
        fact: classify(state, forge, fact),
    })
}

/// Answers a [`Rejected`] delivery and passes every other rejection on unchanged (warp's
/// `recover` for the hook route): a refused delivery is counted, kept for `/api/deliveries` and
/// logged first.
pub async fn answer_rejected(
    state: Arc<AppState>,
    rejection: Rejection,
) -> Result<super::Reply, Rejection> {
    use serde_json::json;
    let Some(rejected) = rejection.find::<Rejected>() else {
        return Err(rejection);
    };
    match rejected {
        Rejected::UnknownKind => Ok(super::reply_json(
            StatusCode::NOT_FOUND,
            &json!({ "error": "not found: use /hooks/gitea or /hooks/github" }),
        )),
        Rejected::Refused {
            status,
            outcome,
            row,
        } => {
            let reason = row.reason.clone().unwrap_or_default();
            state.metrics.delivery(outcome);
            state.remember_rejected(DeliveryRow::clone(row));
            // A summary, not a line per request: a flood of unsigned deliveries writes one line
            // a minute, with how many it stands for.
            if let Some(count) = state.rejection_to_log(&reason) {
                tracing::warn!(delivery = %row.delivery, forge = row.forge.as_str(), outcome = "rejected", status = status.as_u16(), reason = reason.as_str(), count, "Webhook deliveries rejected ({count} for this reason since its last line; the newest is named).");
            }
            Ok(super::reply_json(*status, &json!({ "error": reason })))
        }
    }
}

/// Maps a parsed fact onto the enrollment: a new tag of an enrolled recipe that is a release
/// tag stays a new tag, with its version parsed; anything else becomes ignored with its reason.
fn classify(state: &AppState, forge: ForgeKind, fact: Fact) -> IntakeFact {
    match fact {
        Fact::NewTag {
            repo,
            tag,
            ref_sha,
            commit_hint,
        } => {
            let full = event::safe(&repo.full_name);
            let Some(recipe) = state.enrollment.by_upstream(repo.candidates()) else {
                return IntakeFact::Ignored {
                    repo: Some(full),
                    recipe: None,
                    tag: Some(event::safe(&tag)),
                    reason: "repository is not enrolled".into(),
                };
            };
            if let Some(reason) = wrong_forge(forge, &recipe.upstream) {
                return IntakeFact::Rejected {
                    repo: Some(full),
                    recipe: Some(recipe.name.clone()),
                    tag: Some(event::safe(&tag)),
                    reason,
                };
            }
            let version = match ReleaseVersion::parse(&tag) {
                Ok(v) => v,
                Err(e) => {
                    return IntakeFact::Ignored {
                        repo: Some(full),
                        recipe: Some(recipe.name.clone()),
                        tag: Some(event::safe(&tag)),
                        reason: format!("not a release tag: {e}"),
                    }
                }
            };
            if tag.len() > 255 {
                return IntakeFact::Ignored {
                    repo: Some(full),
                    recipe: Some(recipe.name.clone()),
                    tag: Some(event::safe(&tag)),
                    reason: "tag name longer than 255 characters".into(),
                };
            }
            IntakeFact::NewTag {
                repo: full,
                recipe: recipe.name.clone(),
                tag: version,
                ref_sha,
                commit_hint,
            }
        }
        Fact::TagDeleted { repo, tag } => IntakeFact::Deleted {
            recipe: state
                .enrollment
                .by_upstream(repo.candidates())
                .map(|r| r.name.clone()),
            repo: event::safe(&repo.full_name),
            tag: event::safe(&tag),
        },
        Fact::Ignored { repo, tag, reason } => IntakeFact::Ignored {
            recipe: repo
                .as_ref()
                .and_then(|r| state.enrollment.by_upstream(r.candidates()))
                .map(|r| r.name.clone()),
            repo: repo.map(|r| event::safe(&r.full_name)),
            tag: tag.map(|t| event::safe(&t)),
            reason,
        },
    }
}

/// Returns why a delivery from `forge` cannot be about an upstream at `upstream`, or `None`
/// when it can: a repository is matched by its name, and the same `owner/name` on another kind
/// of forge is someone else's. GitHub lives on github.com; any other host is Gitea or Forgejo;
/// a local upstream sends no webhooks of its own, so any forge may stand for it.
fn wrong_forge(forge: ForgeKind, upstream: &RepoLocation) -> Option<String> {
    if upstream.is_local() {
        return None;
    }
    let host = upstream_host(&upstream.url)?;
    let on_github = host == "github.com" || host.ends_with(".github.com");
    let from_github = forge == ForgeKind::GitHub;
    (on_github != from_github).then(|| {
        format!(
            "a {forge} delivery, but the recipe's upstream is on {host} ({}): a repository of the same name on another forge is not the recipe's",
            if on_github { "GitHub" } else { "Gitea or Forgejo" }
        )
    })
}

/// Returns the lower-case host of a URL or an scp-like `user@host:path` address.
fn upstream_host(url: &str) -> Option<String> {
    if url.contains("://") {
        return url::Url::parse(url)
            .ok()?
            .host_str()
            .map(str::to_ascii_lowercase);
    }
    let (userhost, _) = url.split_once(':')?;
    let host = userhost.rsplit('@').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_from_another_kind_of_forge_than_the_upstream_is_refused() {
        let at = |url: &str| RepoLocation {
            url: url.into(),
            full_name: Some("o/app".into()),
            forge: None,
        };
        let table = [
            (
                ForgeKind::GitHub,
                "https://git.coopcloud.tech/o/app.git",
                true,
            ),
            (
                ForgeKind::Gitea,
                "https://git.coopcloud.tech/o/app.git",
                false,
            ),
            (ForgeKind::Forgejo, "https://codeberg.org/o/app.git", false),
            (ForgeKind::GitHub, "https://github.com/o/app.git", false),
            (ForgeKind::Gitea, "https://github.com/o/app.git", true),
            (ForgeKind::Gitea, "git@github.com:o/app.git", true),
            (ForgeKind::GitHub, "git@git.example:o/app.git", true),
            (ForgeKind::GitHub, "/srv/git/app.git", false),
        ];
        for (forge, url, refused) in table {
            assert_eq!(
                wrong_forge(forge, &at(url)).is_some(),
                refused,
                "{forge} {url}"
            );
        }
    }

    #[test]
    fn the_hook_path_and_the_event_header_name_the_forge() {
        let forgejo = {
            let mut h = HeaderMap::new();
            h.insert("x-forgejo-event", "push".parse().expect("a header value"));
            h
        };
        let none = HeaderMap::new();
        let table = [
            ("github", &none, Some(ForgeKind::GitHub)),
            ("gitea", &none, Some(ForgeKind::Gitea)),
            ("gogs", &none, Some(ForgeKind::Gitea)),
            ("forgejo", &none, Some(ForgeKind::Gitea)),
            ("gitea", &forgejo, Some(ForgeKind::Forgejo)),
            ("forgejo", &forgejo, Some(ForgeKind::Forgejo)),
            ("github", &forgejo, Some(ForgeKind::GitHub)),
            ("gitlab", &none, None),
            ("", &none, None),
        ];
        for (kind, headers, want) in table {
            assert_eq!(forge_of(kind, headers), want, "{kind}");
        }
    }

    #[test]
    fn a_delivery_id_keeps_only_safe_characters_and_64_of_them() {
        let mut h = HeaderMap::new();
        let long = format!("ab-12/<x>{}", "z".repeat(100));
        h.insert("x-github-delivery", long.parse().expect("a header value"));
        let id = delivery_id(&h);
        assert_eq!(id.len(), 64);
        assert!(id.starts_with("ab-12xz"), "{id}");
    }
}
