//! A secret string (token, webhook secret) whose `Debug` and `Display` print `***`.
//!
//! Secrets only leave this type through [`Secret::expose`], so a secret reaching a log or an error
//! message takes a deliberate call that a reviewer can find.

use std::fmt;

/// A secret value. Never printed; compare with [`Secret::expose`] only where needed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns true when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replaces every occurrence of the secret in `text` with `***`.
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.0, "***")
        }
    }
}

/// Returns true when the parsed git URL carries a credential: a password in any scheme, or any
/// user info over HTTP(S), where `https://TOKEN@host/...` is a token in the user name. An SSH URL
/// may name its login user (`ssh://git@host/...`). The one rule for every URL setting and the
/// enrollment.
pub fn url_carries_credentials(url: &url::Url) -> bool {
    url.password().is_some()
        || (matches!(url.scheme(), "http" | "https") && !url.username().is_empty())
}

/// Returns `value` with everything between the scheme and the last `@` masked as `***`: the user
/// info of a URL (where a token may hide), even one too broken to parse or written without a
/// scheme. A path with an `@` is masked too; that only hides more.
pub fn without_userinfo(value: &str) -> String {
    let start = value.find("://").map_or(0, |i| i + 3);
    match value[start..].rfind('@') {
        Some(at) => format!("{}***{}", &value[..start], &value[start + at..]),
        None => value.to_string(),
    }
}

/// Query parameters that carry a credential (`?access_token=...`, GitLab's `private_token`).
const CREDENTIAL_PARAMS: [&str; 6] = [
    "access_token",
    "private_token",
    "token",
    "password",
    "secret",
    "api_key",
];

/// Returns true when a git location carries a credential in any form: user info with a password
/// or an HTTP user (`https://TOKEN@host/...`), an scp-like address with a password
/// (`user:PASS@host:path`), or a credential query parameter (`?access_token=...`).
pub fn git_location_carries_credentials(value: &str) -> bool {
    let v = value.trim();
    if let Ok(url) = url::Url::parse(v) {
        if v.contains("://") {
            return url_carries_credentials(&url)
                || url
                    .query_pairs()
                    .any(|(k, _)| CREDENTIAL_PARAMS.contains(&k.to_ascii_lowercase().as_str()));
        }
    }
    scp_password(v)
}

/// Returns true for an scp-like `user:PASS@host:path`: a `:` before the `@` of the user info.
fn scp_password(v: &str) -> bool {
    if v.contains("://") || v.starts_with('/') {
        return false;
    }
    let head = v.split('/').next().unwrap_or(v);
    match head.rfind('@') {
        Some(at) => head[..at].contains(':'),
        None => false,
    }
}

/// Returns a git location safe to print: user info masked in any form (`https://***@host`,
/// `***@host:path`) and credential query parameters' values masked.
pub fn shown_location(value: &str) -> String {
    let masked = without_userinfo(value);
    credential_params_masked_in(&masked)
}

/// Returns `text` with the value of every credential query parameter (`access_token=...`)
/// masked as `***`.
pub fn credential_params_masked_in(text: &str) -> String {
    let mut out = text.to_string();
    for key in CREDENTIAL_PARAMS {
        let mut from = 0;
        loop {
            let lower = out.to_ascii_lowercase();
            let Some(found) = lower[from..].find(&format!("{key}=")) else {
                break;
            };
            let start = from + found;
            // Only a parameter: at the start of a query or after `&`.
            let is_param = start > 0 && matches!(out.as_bytes()[start - 1], b'?' | b'&' | b';');
            let value_start = start + key.len() + 1;
            if !is_param {
                from = value_start;
                continue;
            }
            let value_end = out[value_start..]
                .find(|c: char| {
                    c.is_whitespace() || matches!(c, '&' | '#' | '"' | '\'' | '<' | '>' | '`' | ')')
                })
                .map_or(out.len(), |e| value_start + e);
            out.replace_range(value_start..value_end, "***");
            from = value_start + 3;
        }
    }
    out
}

/// Returns `text` with the user info of every URL in it masked as `***` (`https://***@host/...`),
/// and the values of credential query parameters (`?access_token=***`):
/// for messages from elsewhere (a server's error answer, a library's error) that may quote a URL
/// with a token in it. Only what sits between `://` and the last `@` before the URL's path is
/// masked.
pub fn userinfo_masked_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`')
            })
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    credential_params_masked_in(&out)
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_in_any_form_of_git_location_is_found_and_masked() {
        let leaking = [
            (
                "https://TOKEN@forge.example/o/n.git",
                "https://***@forge.example/o/n.git",
            ),
            (
                "https://u:PASS@forge.example/o/n.git",
                "https://***@forge.example/o/n.git",
            ),
            (
                "user:PASS@forge.example:o/state.git",
                "***@forge.example:o/state.git",
            ),
            (
                "https://forge.example/o/state.git?access_token=PASS",
                "https://forge.example/o/state.git?access_token=***",
            ),
            (
                "https://forge.example/o/state.git?x=1&Private_Token=PASS#f",
                "https://forge.example/o/state.git?x=1&Private_Token=***#f",
            ),
        ];
        for (given, shown) in leaking {
            assert!(git_location_carries_credentials(given), "{given}");
            assert_eq!(shown_location(given), shown);
            assert!(!shown_location(given).contains("PASS"), "{given}");
        }
        for fine in [
            "git@forge.example:o/state.git",
            "ssh://git@forge.example:2222/o/state.git",
            "https://forge.example/o/state.git?ref=main",
            "/srv/git/state.git",
            "file:///srv/git/state.git",
        ] {
            assert!(!git_location_carries_credentials(fine), "{fine}");
            assert!(shown_location(fine).contains("/state.git"), "{fine}");
        }
    }

    #[test]
    fn credentials_are_any_http_user_info_and_a_password_anywhere() {
        let carries = |u: &str| url_carries_credentials(&url::Url::parse(u).unwrap());
        for u in [
            "https://TOKEN@forge.example/o/n.git",
            "http://user:pw@forge.example/o/n.git",
            "ssh://git:pw@forge.example/o/n.git",
        ] {
            assert!(carries(u), "{u}");
        }
        for u in [
            "https://forge.example/o/n.git",
            "ssh://git@forge.example/o/n.git",
            "file:///srv/state.git",
        ] {
            assert!(!carries(u), "{u}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.redact("url https://x:hunter2@h/"), "url https://x:***@h/");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn user_info_is_masked_in_any_url_text() {
        assert_eq!(without_userinfo("https://t@h/x"), "https://***@h/x");
        assert_eq!(without_userinfo("https://a:b@c@h/"), "https://***@h/");
        assert_eq!(without_userinfo("canon:hunter2@listener"), "***@listener");
        assert_eq!(
            without_userinfo("https://s3cr3t@[bad/o"),
            "https://***@[bad/o"
        );
        assert_eq!(
            without_userinfo("https://t@h/x@y"),
            "https://***@y",
            "a path @ hides more"
        );
        assert_eq!(without_userinfo("/local/path"), "/local/path");
        assert_eq!(without_userinfo("https://h/o/r.git"), "https://h/o/r.git");
    }

    #[test]
    fn every_url_in_a_text_loses_its_user_info_and_nothing_else_changes() {
        let cases = [
            (
                "fetch https://bob:hunter2@git.example/o/r.git failed",
                "fetch https://***@git.example/o/r.git failed",
            ),
            (
                "a https://t@h/x and \"http://u:p@[::1]:80/y\"",
                "a https://***@h/x and \"http://***@[::1]:80/y\"",
            ),
            ("ssh://git@h:2222/o/r", "ssh://***@h:2222/o/r"),
            (
                "no user: https://h/a@b?c=d@e and mail@example.org",
                "no user: https://h/a@b?c=d@e and mail@example.org",
            ),
            ("https://tok@h", "https://***@h"),
            ("trailing ://", "trailing ://"),
            ("", ""),
        ];
        for (text, want) in cases {
            assert_eq!(userinfo_masked_in(text), want, "{text}");
        }
    }
}
