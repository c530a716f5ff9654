//! Webhook signature verification: HMAC-SHA256 over the raw body, in constant time.
//!
//! Runs before the body is parsed, so an unsigned body never reaches the JSON parser. Gitea and
//! Forgejo send bare lowercase hex in `X-Gitea-Signature`, `X-Forgejo-Signature` and
//! `X-Gogs-Signature`; GitHub (and Gitea too) send `sha256=<hex>` in `X-Hub-Signature-256`. An
//! empty header means the sender has no secret configured, which is a rejection. Several secrets
//! may be valid at once, so a secret can be rotated without losing deliveries.

use canon_shared::secret::Secret;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Signature headers, in the order they are tried (all compared lower-case).
pub const SIGNATURE_HEADERS: [&str; 4] = [
    "x-gitea-signature",
    "x-forgejo-signature",
    "x-gogs-signature",
    "x-hub-signature-256",
];

/// Why a delivery's signature was not accepted. Never carries the signature itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header, or only empty ones.
    #[error("no signature header (X-Gitea-Signature, X-Forgejo-Signature, X-Gogs-Signature or X-Hub-Signature-256)")]
    Missing,
    /// The header is not 64 hex digits (after `sha256=` for `X-Hub-Signature-256`).
    #[error("malformed signature header")]
    Malformed,
    /// No configured secret produces this signature.
    #[error("signature does not match any configured secret")]
    Mismatch,
}

/// Verifies `body` against the signature headers given by `header` (a lower-case name lookup).
///
/// The first non-empty header among [`SIGNATURE_HEADERS`] is checked against every secret; the
/// comparison is constant-time and every secret is always tried.
pub fn verify<'a>(
    header: impl Fn(&str) -> Option<&'a [u8]>,
    body: &[u8],
    secrets: &[Secret],
) -> Result<(), SignatureError> {
    let (name, value) = SIGNATURE_HEADERS
        .iter()
        .find_map(|name| {
            header(name)
                .map(|v| v.trim_ascii())
                .filter(|v| !v.is_empty())
                .map(|v| (*name, v))
        })
        .ok_or(SignatureError::Missing)?;
    let hex_part = if name == "x-hub-signature-256" {
        match value.strip_prefix(b"sha256=") {
            Some(rest) => rest,
            None => return Err(SignatureError::Malformed),
        }
    } else {
        value
    };
    let mut given = [0u8; 32];
    if hex_part.len() != 64 || hex::decode_to_slice(hex_part, &mut given).is_err() {
        return Err(SignatureError::Malformed);
    }
    let mut ok = subtle::Choice::from(0);
    for secret in secrets {
        ok |= sign(secret, body).ct_eq(&given);
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Returns HMAC-SHA256(secret, body).
pub fn sign(secret: &Secret, body: &[u8]) -> [u8; 32] {
    // Hmac accepts keys of any length, so new_from_slice cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret.expose().as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Returns the lower-case hex signature Gitea sends in `X-Gitea-Signature`.
pub fn sign_hex(secret: &Secret, body: &[u8]) -> String {
    hex::encode(sign(secret, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Vec<Secret> {
        vec![
            Secret::new("old-secret-0123456789"),
            Secret::new("new-secret-0123456789"),
        ]
    }

    fn check(headers: &[(&str, String)], body: &[u8]) -> Result<(), SignatureError> {
        verify(
            |n| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.as_bytes())
            },
            body,
            &secrets(),
        )
    }

    #[test]
    fn rfc4231_vector_matches() {
        // RFC 4231 test case 2.
        let got = sign_hex(&Secret::new("Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            got,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn every_header_form_and_either_secret_verifies() {
        let body = br#"{"ref":"1.0.0+1.0"}"#;
        for s in secrets() {
            let hex = sign_hex(&s, body);
            for name in [
                "X-Gitea-Signature",
                "X-Forgejo-Signature",
                "X-Gogs-Signature",
            ] {
                assert_eq!(check(&[(name, hex.clone())], body), Ok(()));
            }
            assert_eq!(
                check(&[("X-Hub-Signature-256", format!("sha256={hex}"))], body),
                Ok(())
            );
            assert_eq!(
                check(&[("x-gitea-signature", hex.to_uppercase())], body),
                Ok(())
            );
        }
    }

    #[test]
    fn wrong_missing_or_malformed_signatures_are_rejected() {
        let body = b"{}";
        let other = sign_hex(&Secret::new("someone-else-0123456"), body);
        let good = sign_hex(&secrets()[0], body);
        let table: Vec<(Vec<(&str, String)>, SignatureError)> = vec![
            (vec![], SignatureError::Missing),
            (
                vec![("X-Gitea-Signature", String::new())],
                SignatureError::Missing,
            ),
            (
                vec![("X-Hub-Signature-256", "sha256=".into())],
                SignatureError::Malformed,
            ),
            (
                vec![("X-Hub-Signature-256", good.clone())],
                SignatureError::Malformed,
            ),
            (
                vec![("X-Gitea-Signature", "zz".repeat(32))],
                SignatureError::Malformed,
            ),
            (
                vec![("X-Gitea-Signature", good[..60].to_string())],
                SignatureError::Malformed,
            ),
            (vec![("X-Gitea-Signature", other)], SignatureError::Mismatch),
            (
                vec![("X-Hub-Signature", format!("sha1={good}"))],
                SignatureError::Missing,
            ),
        ];
        for (headers, want) in table {
            assert_eq!(check(&headers, body), Err(want), "{headers:?}");
        }
        assert_eq!(
            check(&[("X-Gitea-Signature", good)], b"{} "),
            Err(SignatureError::Mismatch)
        );
    }
}
