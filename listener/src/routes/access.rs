//! Who may read: with an admin token configured, `/`, `/api/*` and `/metrics` need it as a
//! bearer token; `/healthz`, `/readyz`, `/badge/*` and `/hooks/*` never do (probes, README images
//! and forges carry none, and a webhook is authenticated by its signature).
//!
//! Kept apart from the routes so the comparison can be read and tested alone: both sides are
//! hashed with SHA-256 and the digests compared in constant time, so neither the token's bytes
//! nor its length show in the answer time. A refusal is a 401 without detail, and the token is
//! never logged.

use std::convert::Infallible;
use std::sync::Arc;

use canon_shared::secret::Secret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warp::http::StatusCode;
use warp::Filter;

use crate::routes::{AppState, Reply};

/// The rejection of a request without the admin token (or with a wrong one).
#[derive(Debug)]
pub struct Unauthorized;

impl warp::reject::Reject for Unauthorized {}

/// Returns true when `authorization` (the header's value) is `Bearer <token>`, compared in
/// constant time. The scheme is case-insensitive (RFC 9110, section 11.1).
pub fn bearer_matches(authorization: Option<&str>, token: &Secret) -> bool {
    let Some(given) = authorization.and_then(|h| {
        let (scheme, rest) = h.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    }) else {
        return false;
    };
    let given = Sha256::digest(given.as_bytes());
    let wanted = Sha256::digest(token.expose().as_bytes());
    given.ct_eq(&wanted).into()
}

/// Passes a request that may read: any request when no admin token is configured, else one that
/// carries it; rejects the others with [`Unauthorized`].
pub fn admin(
    state: Arc<AppState>,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let allowed = match state.admin_token() {
                None => true,
                Some(token) => bearer_matches(header.as_deref(), token),
            };
            async move {
                if allowed {
                    Ok(())
                } else {
                    Err(warp::reject::custom(Unauthorized))
                }
            }
        })
        .untuple_one()
}

/// Returns the answer to an unauthorized request: 401, a bearer challenge, no body.
pub fn unauthorized() -> Result<Reply, Infallible> {
    Ok(Box::new(warp::reply::with_header(
        warp::reply::with_status(warp::reply(), StatusCode::UNAUTHORIZED),
        "www-authenticate",
        "Bearer",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_matches() {
        let token = Secret::new("admin-token-0123456789");
        let cases: &[(&str, Option<&str>, bool)] = &[
            (
                "the token as a bearer",
                Some("Bearer admin-token-0123456789"),
                true,
            ),
            (
                "the scheme in any case",
                Some("bearer admin-token-0123456789"),
                true,
            ),
            ("no header", None, false),
            ("an empty header", Some(""), false),
            ("the scheme alone", Some("Bearer"), false),
            ("a prefix of the token", Some("Bearer admin-token"), false),
            (
                "the token and more",
                Some("Bearer admin-token-01234567890"),
                false,
            ),
            (
                "another scheme",
                Some("Basic admin-token-0123456789"),
                false,
            ),
            (
                "the token without a scheme",
                Some("admin-token-0123456789"),
                false,
            ),
        ];
        for (says, header, want) in cases {
            assert_eq!(bearer_matches(*header, &token), *want, "{says}");
        }
    }
}
