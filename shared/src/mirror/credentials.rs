//! The credentials canon holds for git, and the one place that turns them into a recipe's
//! [`GitRemote`]s. Tag mode, the sweep, `mirror-sync` and the listener's worker all build their
//! remotes here, so a new way to authenticate is added once.
//!
//! Each token is bound to the base URL it was configured for (its scheme, host and port): a
//! remote elsewhere gets no token and is read anonymously, so a recipe enrolled on another host
//! never sees the forge's token. A side with no base sends its token nowhere: the base comes
//! from the enrollment ([`crate::recipe::Enrollment::token_bases`]) or from the URL the operator
//! gives on the command line (`mirror-sync`'s explicit URLs). The state repository, which the
//! operator names on its own, gets the mirror token at its own origin.

use std::path::PathBuf;

use crate::recipe::Recipe;
use crate::secret::Secret;

use super::GitRemote;

/// Tokens and SSH settings for the upstream and mirror sides.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Token for the upstream (fetch) side over HTTPS.
    pub upstream_token: Option<Secret>,
    /// Token for the mirror (push) side over HTTPS.
    pub mirror_token: Option<Secret>,
    /// A private key file for SSH remotes.
    pub ssh_key: Option<PathBuf>,
    /// The `known_hosts` file that alone decides which SSH host keys are trusted.
    pub known_hosts: Option<PathBuf>,
    /// The base URL the upstream token is for; a remote on another origin gets no token.
    pub upstream_base: Option<String>,
    /// The base URL the mirror token is for; a remote on another origin gets no token.
    pub mirror_base: Option<String>,
}

impl Credentials {
    /// Returns the remote for `url` on the upstream side: with the upstream token only when
    /// `url` is on the upstream base's origin.
    pub fn upstream_remote(&self, url: &str) -> GitRemote {
        self.remote(url, bound(&self.upstream_token, &self.upstream_base, url))
    }

    /// Returns the remote for `url` on the mirror side: with the mirror token only when `url`
    /// is on the mirror base's origin.
    pub fn mirror_remote(&self, url: &str) -> GitRemote {
        self.remote(url, bound(&self.mirror_token, &self.mirror_base, url))
    }

    /// Returns the remote of the state repository at `url`, which the operator names on its own:
    /// reached with the mirror token (or the SSH key), sent to that URL's origin only.
    pub fn state_remote(&self, url: &str) -> GitRemote {
        self.remote(url, self.mirror_token.clone())
    }

    /// Returns `recipe`'s upstream remote.
    pub fn upstream(&self, recipe: &Recipe) -> GitRemote {
        self.upstream_remote(&recipe.upstream.url)
    }

    /// Returns `recipe`'s mirror remote.
    pub fn mirror(&self, recipe: &Recipe) -> GitRemote {
        self.mirror_remote(&recipe.mirror.url)
    }

    fn remote(&self, url: &str, token: Option<Secret>) -> GitRemote {
        GitRemote {
            url: url.to_string(),
            token,
            ssh_key: self.ssh_key.clone(),
            known_hosts: self.known_hosts.clone(),
        }
    }
}

/// Returns `token` when `url` may receive it: `url` on `base`'s origin. With no base, the token
/// has no host it was configured for, and goes nowhere.
fn bound(token: &Option<Secret>, base: &Option<String>, url: &str) -> Option<Secret> {
    let token = token.as_ref()?;
    match base {
        Some(base) if super::remote::same_origin(base, url) => Some(token.clone()),
        Some(_) => {
            tracing::debug!(url = %super::GitRemote::local(url).display_url(), "The remote is not on the token's host; reading it anonymously.");
            None
        }
        None => {
            tracing::debug!(url = %super::GitRemote::local(url).display_url(), "The token is bound to no host (no forge base, and the enrolled locations are on several hosts); reading the remote anonymously.");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_gets_its_own_token_and_both_share_the_ssh_settings() {
        let creds = Credentials {
            upstream_token: Some(Secret::new("up")),
            mirror_token: Some(Secret::new("down")),
            ssh_key: Some("/k".into()),
            known_hosts: Some("/kh".into()),
            upstream_base: Some("https://u".into()),
            mirror_base: Some("https://m".into()),
        };
        let up = creds.upstream_remote("https://u/x.git");
        let mirror = creds.mirror_remote("https://m/x.git");
        assert_eq!(up.token.as_ref().map(Secret::expose), Some("up"));
        assert_eq!(mirror.token.as_ref().map(Secret::expose), Some("down"));
        for r in [&up, &mirror] {
            assert_eq!(r.ssh_key.as_deref(), Some(std::path::Path::new("/k")));
            assert_eq!(r.known_hosts.as_deref(), Some(std::path::Path::new("/kh")));
        }
        assert_eq!(up.url, "https://u/x.git");
    }

    #[test]
    fn a_token_goes_only_to_remotes_on_its_base() {
        let creds = Credentials {
            upstream_token: Some(Secret::new("up")),
            mirror_token: Some(Secret::new("down")),
            upstream_base: Some("https://git.coopcloud.tech".into()),
            mirror_base: Some("https://mirror.example:8443/".into()),
            ..Credentials::default()
        };
        let token = |r: GitRemote| r.token.map(|t| t.expose().to_string());
        for (url, want) in [
            ("https://git.coopcloud.tech/coop-cloud/app.git", Some("up")),
            ("https://GIT.coopcloud.tech:443/o/r.git", Some("up")),
            ("https://evil.example/coop-cloud/app.git", None),
            ("http://git.coopcloud.tech/o/r.git", None),
            ("https://git.coopcloud.tech:8443/o/r.git", None),
            ("git@git.coopcloud.tech:o/r.git", None),
            ("/srv/git/app.git", None),
        ] {
            assert_eq!(token(creds.upstream_remote(url)).as_deref(), want, "{url}");
        }
        assert_eq!(
            token(creds.mirror_remote("https://mirror.example:8443/m/app.git")).as_deref(),
            Some("down")
        );
        assert_eq!(
            token(creds.mirror_remote("https://mirror.example/m/app.git")),
            None
        );
        let unbound = Credentials {
            upstream_token: Some(Secret::new("up")),
            ..Credentials::default()
        };
        assert_eq!(
            token(unbound.upstream_remote("https://any.example/o/r.git")),
            None,
            "a token bound to no host goes to none"
        );
    }
}
